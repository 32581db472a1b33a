//! The restart checkpoint: per-flow baselines, exported counters and the pods they belong to,
//! encoded as bytes. Writing the bytes to disk atomically is the agent's job.
//!
//! Format (all integers little-endian), chosen to stay small at a million entries (24 bytes per
//! baseline) and to reject a truncated or foreign file instead of misreading it:
//! ```text
//! magic "NCCK" | version u32 | node name (str) | primed u8
//! baselines: count u64, then per entry: id u32, fingerprint u32, original u64, reply u64
//! pods:      count u64, then per pod: namespace, name, uid (str each)
//! series:    count u64, then per series: owner (u8 0 = node | 1 = pod + uid str),
//!            direction u8, class u8, service (u8 0 = none | 1 + str), value u64, pending u64
//! pairs:     count u64, then per pair: client peer, server peer, class u8, value u64,
//!            pending u64; a peer is namespace, kind, name, zone (str each)   [version 3 only]
//! checksum u64: FNV-1a of everything before it
//! ```
//! where `str` is a u32 length followed by UTF-8 bytes. Version 2 files (before workload pairs)
//! are still read, with no pairs, so an upgrade keeps every other counter.

use std::sync::Arc;

use crate::aggregate::{Owner, PodLabels, SavedSeries, SeriesKey};
use crate::class::{Direction, TrafficClass};
use crate::delta::SavedBaseline;
use crate::pairs::{PairKey, Peer, SavedPair};

const MAGIC: &[u8; 4] = b"NCCK";
const VERSION: u32 = 3;
/// The last version without workload pairs.
const VERSION_WITHOUT_PAIRS: u32 = 2;

/// Everything the agent needs to continue counting after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// The node it was written on; a checkpoint of another node is refused.
    pub node_name: String,
    /// True when written after a complete first dump. If false, the baselines may be partial and
    /// the restored agent must take baselines again before counting new entries in full.
    pub primed: bool,
    /// Per-flow baselines.
    pub baselines: Vec<SavedBaseline>,
    /// Exported counters.
    pub series: Vec<SavedSeries>,
    /// Pods with series.
    pub pods: Vec<PodLabels>,
    /// Workload pair counters.
    pub pairs: Vec<SavedPair>,
}

/// Why a checkpoint could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Not a netcost checkpoint.
    #[error("not a netcost checkpoint (bad magic bytes)")]
    BadMagic,
    /// Written by another format version.
    #[error("checkpoint format version {0} is not supported (expected {VERSION})")]
    UnsupportedVersion(u32),
    /// Ends early.
    #[error("checkpoint is truncated at byte {0}")]
    Truncated(usize),
    /// The checksum does not match: the file was damaged.
    #[error("checkpoint checksum mismatch: the file is damaged")]
    BadChecksum,
    /// A field holds an impossible value.
    #[error("checkpoint field {field} holds an invalid value")]
    Invalid {
        /// Which field.
        field: &'static str,
    },
}

impl Checkpoint {
    /// Encodes the checkpoint.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.baselines.len() * 24 + self.series.len() * 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        put_str(&mut out, &self.node_name);
        out.push(u8::from(self.primed));
        out.extend_from_slice(&(self.baselines.len() as u64).to_le_bytes());
        for b in &self.baselines {
            out.extend_from_slice(&b.id.to_le_bytes());
            out.extend_from_slice(&b.fingerprint.to_le_bytes());
            out.extend_from_slice(&b.original_bytes.to_le_bytes());
            out.extend_from_slice(&b.reply_bytes.to_le_bytes());
        }
        out.extend_from_slice(&(self.pods.len() as u64).to_le_bytes());
        for p in &self.pods {
            put_str(&mut out, &p.namespace);
            put_str(&mut out, &p.name);
            put_str(&mut out, &p.uid);
        }
        out.extend_from_slice(&(self.series.len() as u64).to_le_bytes());
        for s in &self.series {
            match &s.key.owner {
                Owner::Node => out.push(0),
                Owner::Pod(uid) => {
                    out.push(1);
                    put_str(&mut out, uid);
                }
            }
            out.push(match s.key.direction {
                Direction::Egress => 0,
                Direction::Ingress => 1,
            });
            out.push(s.key.class as u8);
            match &s.key.service {
                None => out.push(0),
                Some(name) => {
                    out.push(1);
                    put_str(&mut out, name);
                }
            }
            out.extend_from_slice(&s.value.to_le_bytes());
            out.extend_from_slice(&s.pending.to_le_bytes());
        }
        out.extend_from_slice(&(self.pairs.len() as u64).to_le_bytes());
        for p in &self.pairs {
            for peer in [&p.key.client, &p.key.server] {
                put_str(&mut out, &peer.namespace);
                put_str(&mut out, &peer.kind);
                put_str(&mut out, &peer.name);
                put_str(&mut out, &peer.zone);
            }
            out.push(p.key.class as u8);
            out.extend_from_slice(&p.value.to_le_bytes());
            out.extend_from_slice(&p.pending.to_le_bytes());
        }
        let sum = fnv64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decodes a checkpoint, refusing damaged or foreign input.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(CheckpointError::BadMagic);
        }
        let body_len = bytes
            .len()
            .checked_sub(8)
            .ok_or(CheckpointError::Truncated(0))?;
        let mut r = Reader {
            bytes: &bytes[..body_len],
            pos: 4,
        };
        let version = r.u32()?;
        if version != VERSION && version != VERSION_WITHOUT_PAIRS {
            return Err(CheckpointError::UnsupportedVersion(version));
        }
        let stored = u64::from_le_bytes(
            bytes[body_len..]
                .try_into()
                .map_err(|_| CheckpointError::Truncated(body_len))?,
        );
        if stored != fnv64(&bytes[..body_len]) {
            return Err(CheckpointError::BadChecksum);
        }
        let node_name = r.string()?;
        let primed = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(CheckpointError::Invalid { field: "primed" }),
        };
        let n = r.count(24)?;
        let mut baselines = Vec::with_capacity(n);
        for _ in 0..n {
            baselines.push(SavedBaseline {
                id: r.u32()?,
                fingerprint: r.u32()?,
                original_bytes: r.u64()?,
                reply_bytes: r.u64()?,
            });
        }
        let n = r.count(12)?;
        let mut pods = Vec::with_capacity(n);
        for _ in 0..n {
            pods.push(PodLabels {
                namespace: r.string()?.into(),
                name: r.string()?.into(),
                uid: r.string()?.into(),
            });
        }
        let n = r.count(20)?;
        let mut series = Vec::with_capacity(n);
        for _ in 0..n {
            let owner = match r.u8()? {
                0 => Owner::Node,
                1 => Owner::Pod(Arc::from(r.string()?)),
                _ => {
                    return Err(CheckpointError::Invalid {
                        field: "series.owner",
                    });
                }
            };
            let direction = match r.u8()? {
                0 => Direction::Egress,
                1 => Direction::Ingress,
                _ => {
                    return Err(CheckpointError::Invalid {
                        field: "series.direction",
                    });
                }
            };
            let class = r.class("series.class")?;
            let service = match r.u8()? {
                0 => None,
                1 => Some(Arc::from(r.string()?)),
                _ => {
                    return Err(CheckpointError::Invalid {
                        field: "series.service",
                    });
                }
            };
            series.push(SavedSeries {
                key: SeriesKey {
                    owner,
                    direction,
                    class,
                    service,
                },
                value: r.u64()?,
                pending: r.u64()?,
            });
        }
        let mut pairs = Vec::new();
        if version > VERSION_WITHOUT_PAIRS {
            let n = r.count(8 * 4 + 17)?;
            pairs.reserve(n);
            for _ in 0..n {
                let client = r.peer()?;
                let server = r.peer()?;
                let class = r.class("pairs.class")?;
                pairs.push(SavedPair {
                    key: PairKey {
                        client,
                        server,
                        class,
                    },
                    value: r.u64()?,
                    pending: r.u64()?,
                });
            }
        }
        if r.pos != body_len {
            return Err(CheckpointError::Invalid {
                field: "trailing bytes",
            });
        }
        Ok(Checkpoint {
            node_name,
            primed,
            baselines,
            series,
            pods,
            pairs,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(CheckpointError::Truncated(self.pos))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(CheckpointError::Truncated(self.pos))?;
        self.pos = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, CheckpointError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, CheckpointError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, CheckpointError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// A count of records at least `min_size` bytes each, checked against what is left so a
    /// damaged count cannot make us allocate gigabytes.
    fn count(&mut self, min_size: usize) -> Result<usize, CheckpointError> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(min_size as u64) > left {
            return Err(CheckpointError::Truncated(self.pos));
        }
        Ok(n as usize)
    }
    fn class(&mut self, field: &'static str) -> Result<TrafficClass, CheckpointError> {
        TrafficClass::ALL
            .get(usize::from(self.u8()?))
            .copied()
            .ok_or(CheckpointError::Invalid { field })
    }

    fn peer(&mut self) -> Result<Peer, CheckpointError> {
        Ok(Peer {
            namespace: self.string()?.into(),
            kind: self.string()?.into(),
            name: self.string()?.into(),
            zone: self.string()?.into(),
        })
    }

    fn string(&mut self) -> Result<String, CheckpointError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| CheckpointError::Invalid { field: "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            node_name: "node-a".into(),
            primed: true,
            baselines: vec![SavedBaseline {
                id: 7,
                fingerprint: 99,
                original_bytes: 1 << 40,
                reply_bytes: 5,
            }],
            pods: vec![PodLabels {
                namespace: "shop".into(),
                name: "web-1".into(),
                uid: "u-1".into(),
            }],
            series: vec![
                SavedSeries {
                    key: SeriesKey {
                        owner: Owner::Pod("u-1".into()),
                        direction: Direction::Ingress,
                        class: TrafficClass::CrossRegion,
                        service: Some("aws-s3".into()),
                    },
                    value: 12345,
                    pending: 7,
                },
                SavedSeries {
                    key: SeriesKey {
                        owner: Owner::Node,
                        direction: Direction::Egress,
                        class: TrafficClass::Internet,
                        service: None,
                    },
                    value: 1,
                    pending: 0,
                },
            ],
            pairs: vec![SavedPair {
                key: PairKey {
                    client: Peer::new("shop", "Deployment", "web", "us-east-1a"),
                    server: Peer::new("shop", "StatefulSet", "db", "us-east-1b"),
                    class: TrafficClass::CrossZone,
                },
                value: 4096,
                pending: 3,
            }],
        }
    }

    #[test]
    fn a_version_2_checkpoint_is_read_without_pairs() {
        // A version 2 file is a version 3 file without the pairs section.
        let mut c = sample();
        c.pairs.clear();
        let mut bytes = c.encode();
        bytes.truncate(bytes.len() - 16);
        bytes[4..8].copy_from_slice(&VERSION_WITHOUT_PAIRS.to_le_bytes());
        let sum = fnv64(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(Checkpoint::decode(&bytes), Ok(c));
    }

    #[test]
    fn a_checkpoint_round_trips() {
        let c = sample();
        assert_eq!(Checkpoint::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                Checkpoint::decode(&bytes[..len]).is_err(),
                "accepted {len} bytes"
            );
        }
    }

    #[test]
    fn a_flipped_byte_is_refused() {
        let mut bytes = sample().encode();
        bytes[20] ^= 0x40;
        assert_eq!(
            Checkpoint::decode(&bytes),
            Err(CheckpointError::BadChecksum)
        );
    }
}
