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
//!            direction u8, class u8, service (u8 0 = none | 1 + str),
//!            remote region (u8 0 = none | 1 + str), nat gateway u8 (0 | 1)   [from version 4],
//!            value u64, pending u64
//! pairs:     count u64, then per pair: client peer, server peer, class u8, value u64,
//!            pending u64; a peer is namespace, kind, name, zone (str each)   [from version 3]
//! checksum u64: FNV-1a of everything before it
//! ```
//! where `str` is a u32 length followed by UTF-8 bytes. It is written and read as a stream
//! ([`write_checkpoint`], [`read_checkpoint`]): at a million entries the baselines are 24 MB,
//! and a second copy of them in memory would double the agent's peak. Files of the versions
//! before are still read, so an upgrade keeps every counter: version 3 (before remote regions)
//! with no region on any series, version 2 (before workload pairs) with no pairs either.

use std::io::{self, Read, Write};
use std::sync::Arc;

use crate::aggregate::{Owner, PodLabels, SavedSeries, SeriesKey};
use crate::class::{Direction, TrafficClass};
use crate::delta::SavedBaseline;
use crate::pairs::{PairKey, Peer, SavedPair};

const MAGIC: &[u8; 4] = b"NCCK";
const VERSION: u32 = 4;

/// What the counter sections of a format version hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// The pairs section (checkpoint version 3 on, every interim version).
    pairs: bool,
    /// A remote region and the NAT gateway flag on each series (checkpoint version 4, interim
    /// version 2).
    remote_regions: bool,
}

impl Layout {
    const CURRENT: Layout = Layout {
        pairs: true,
        remote_regions: true,
    };

    fn of_checkpoint(version: u32) -> Option<Layout> {
        match version {
            2 => Some(Layout {
                pairs: false,
                remote_regions: false,
            }),
            3 => Some(Layout {
                pairs: true,
                remote_regions: false,
            }),
            VERSION => Some(Layout::CURRENT),
            _ => None,
        }
    }

    fn of_interim(version: u32) -> Option<Layout> {
        match version {
            1 => Some(Layout {
                pairs: true,
                remote_regions: false,
            }),
            INTERIM_VERSION => Some(Layout::CURRENT),
            _ => None,
        }
    }
}

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
    /// Written by the agent of another node.
    #[error("checkpoint belongs to node {found:?}")]
    OtherNode {
        /// The node in the checkpoint.
        found: String,
    },
    /// Reading the input failed (not a damaged file: the read itself).
    #[error("reading the checkpoint failed: {0}")]
    Read(String),
}

/// The parts of a checkpoint as the pipeline holds them, for [`write_checkpoint`]: the
/// baselines are streamed from the tracker instead of being collected first, so writing a
/// checkpoint of a million entries needs no second copy of them in memory.
pub struct CheckpointParts<'a, B> {
    /// See [`Checkpoint::node_name`].
    pub node_name: &'a str,
    /// See [`Checkpoint::primed`].
    pub primed: bool,
    /// How many baselines `baselines` yields.
    pub baseline_count: usize,
    /// The baselines.
    pub baselines: B,
    /// See [`Checkpoint::pods`].
    pub pods: &'a [PodLabels],
    /// See [`Checkpoint::series`].
    pub series: &'a [SavedSeries],
    /// See [`Checkpoint::pairs`].
    pub pairs: &'a [SavedPair],
}

/// Writes a checkpoint to `out` in the format above and returns its checksum, by which an
/// interim checkpoint names it. `out` should be buffered: this writes a few bytes at a time.
///
/// # Errors
///
/// An error of `out`, or `InvalidInput` when `baselines` does not yield `baseline_count` items
/// (the count is written first).
pub fn write_checkpoint<W, B>(out: W, parts: CheckpointParts<'_, B>) -> io::Result<u64>
where
    W: Write,
    B: Iterator<Item = SavedBaseline>,
{
    write_checkpoint_as(out, parts, VERSION, Layout::CURRENT)
}

/// [`write_checkpoint`] in the format of `version`, whose layout is `layout`: the tests write
/// the files of earlier versions with it.
fn write_checkpoint_as<W, B>(
    out: W,
    parts: CheckpointParts<'_, B>,
    version: u32,
    layout: Layout,
) -> io::Result<u64>
where
    W: Write,
    B: Iterator<Item = SavedBaseline>,
{
    let mut out = Hashing {
        inner: out,
        hash: FNV_OFFSET,
    };
    out.write_all(MAGIC)?;
    out.write_all(&version.to_le_bytes())?;
    put_str(&mut out, parts.node_name)?;
    out.write_all(&[u8::from(parts.primed)])?;
    out.write_all(&(parts.baseline_count as u64).to_le_bytes())?;
    let mut written = 0usize;
    for b in parts.baselines {
        let mut record = [0u8; 24];
        record[0..4].copy_from_slice(&b.id.to_le_bytes());
        record[4..8].copy_from_slice(&b.fingerprint.to_le_bytes());
        record[8..16].copy_from_slice(&b.original_bytes.to_le_bytes());
        record[16..24].copy_from_slice(&b.reply_bytes.to_le_bytes());
        out.write_all(&record)?;
        written += 1;
    }
    if written != parts.baseline_count {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{written} baselines written, {} announced",
                parts.baseline_count
            ),
        ));
    }
    write_counters(&mut out, layout, parts.pods, parts.series, parts.pairs)?;
    let sum = out.hash;
    out.inner.write_all(&sum.to_le_bytes())?;
    out.inner.flush()?;
    Ok(sum)
}

/// The pods, series and pairs sections, shared by checkpoints and interim checkpoints.
fn write_counters(
    out: &mut impl Write,
    layout: Layout,
    pods: &[PodLabels],
    series: &[SavedSeries],
    pairs: &[SavedPair],
) -> io::Result<()> {
    out.write_all(&(pods.len() as u64).to_le_bytes())?;
    for p in pods {
        put_str(out, &p.namespace)?;
        put_str(out, &p.name)?;
        put_str(out, &p.uid)?;
    }
    out.write_all(&(series.len() as u64).to_le_bytes())?;
    for s in series {
        match &s.key.owner {
            Owner::Node => out.write_all(&[0])?,
            Owner::Pod(uid) => {
                out.write_all(&[1])?;
                put_str(out, uid)?;
            }
        }
        out.write_all(&[match s.key.direction {
            Direction::Egress => 0,
            Direction::Ingress => 1,
        }])?;
        out.write_all(&[s.key.class as u8])?;
        put_optional_str(out, s.key.service.as_deref())?;
        if layout.remote_regions {
            put_optional_str(out, s.key.remote_region.as_deref())?;
            out.write_all(&[u8::from(s.key.nat_gateway)])?;
        }
        out.write_all(&s.value.to_le_bytes())?;
        out.write_all(&s.pending.to_le_bytes())?;
    }
    if !layout.pairs {
        return Ok(());
    }
    out.write_all(&(pairs.len() as u64).to_le_bytes())?;
    for p in pairs {
        for peer in [&p.key.client, &p.key.server] {
            put_str(out, &peer.namespace)?;
            put_str(out, &peer.kind)?;
            put_str(out, &peer.name)?;
            put_str(out, &peer.zone)?;
        }
        out.write_all(&[p.key.class as u8])?;
        out.write_all(&p.value.to_le_bytes())?;
        out.write_all(&p.pending.to_le_bytes())?;
    }
    Ok(())
}

/// Reads a checkpoint of `len` bytes from `input`, handing each baseline to `baseline` as it is
/// read instead of collecting them; returns the checkpoint, whose `baselines` is empty, and its
/// checksum. `input` should be buffered.
///
/// The checksum is at the end, so `baseline` may have seen baselines of a file that turns out
/// damaged: on an error, throw away what it built.
///
/// # Errors
///
/// As [`Checkpoint::decode`], and [`CheckpointError::Read`] when `input` fails.
pub fn read_checkpoint<R: Read>(
    input: R,
    len: u64,
    baseline: &mut dyn FnMut(SavedBaseline),
) -> Result<(Checkpoint, u64), CheckpointError> {
    let mut r = Reader::open(input, len, MAGIC)?;
    let version = r.u32()?;
    let layout =
        Layout::of_checkpoint(version).ok_or(CheckpointError::UnsupportedVersion(version))?;
    let node_name = r.string()?;
    let primed = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(CheckpointError::Invalid { field: "primed" }),
    };
    let n = r.count(24)?;
    for _ in 0..n {
        let mut record = [0u8; 24];
        r.fill(&mut record)?;
        let word = |at: usize| {
            u32::from_le_bytes([record[at], record[at + 1], record[at + 2], record[at + 3]])
        };
        let long = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&record[at..at + 8]);
            u64::from_le_bytes(a)
        };
        baseline(SavedBaseline {
            id: word(0),
            fingerprint: word(4),
            original_bytes: long(8),
            reply_bytes: long(16),
        });
    }
    let (pods, series, pairs) = read_counters(&mut r, layout)?;
    let computed = r.finish()?;
    let checkpoint = Checkpoint {
        node_name,
        primed,
        baselines: Vec::new(),
        series,
        pods,
        pairs,
    };
    Ok((checkpoint, computed))
}

/// Reads the sections [`write_counters`] writes in `layout`.
#[allow(clippy::type_complexity)]
fn read_counters<R: Read>(
    r: &mut Reader<R>,
    layout: Layout,
) -> Result<(Vec<PodLabels>, Vec<SavedSeries>, Vec<SavedPair>), CheckpointError> {
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
        let service = r.optional_string("series.service")?;
        let (remote_region, nat_gateway) = if layout.remote_regions {
            let region = r.optional_string("series.remote_region")?;
            let nat = match r.u8()? {
                0 => false,
                1 => true,
                _ => {
                    return Err(CheckpointError::Invalid {
                        field: "series.nat_gateway",
                    });
                }
            };
            (region, nat)
        } else {
            (None, false)
        };
        series.push(SavedSeries {
            key: SeriesKey {
                owner,
                direction,
                class,
                service,
                remote_region,
                nat_gateway,
            },
            value: r.u64()?,
            pending: r.u64()?,
        });
    }
    let mut pairs = Vec::new();
    if layout.pairs {
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
    Ok((pods, series, pairs))
}

impl Checkpoint {
    /// Encodes the checkpoint.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.baselines.len() * 24 + self.series.len() * 64);
        let parts = self.parts();
        // Writing to a Vec cannot fail, and the count is the Vec's own length.
        if let Err(e) = write_checkpoint(&mut out, parts) {
            unreachable!("encoding into memory failed: {e}");
        }
        out
    }

    /// The checkpoint as the parts [`write_checkpoint`] takes.
    fn parts(&self) -> CheckpointParts<'_, std::iter::Copied<std::slice::Iter<'_, SavedBaseline>>> {
        CheckpointParts {
            node_name: &self.node_name,
            primed: self.primed,
            baseline_count: self.baselines.len(),
            baselines: self.baselines.iter().copied(),
            pods: &self.pods,
            series: &self.series,
            pairs: &self.pairs,
        }
    }

    /// Decodes a checkpoint, refusing damaged or foreign input.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let mut baselines = Vec::new();
        let (mut checkpoint, _) =
            read_checkpoint(bytes, bytes.len() as u64, &mut |b| baselines.push(b))?;
        checkpoint.baselines = baselines;
        Ok(checkpoint)
    }
}

const INTERIM_MAGIC: &[u8; 4] = b"NCCI";
const INTERIM_VERSION: u32 = 2;

/// The counters as they were after the DESTROY events read since a checkpoint: the pods,
/// series and pairs sections of a checkpoint, without baselines, naming the checkpoint they
/// continue by its checksum.
///
/// Between two cycles only events change the pipeline: they add bytes to counters and remove
/// baselines, never add one. So the checkpoint's baselines with these counters are the state
/// at the time of this file, except for baselines of flows that have ended since, which the
/// next dumps sweep without counting. Written after every drain that counted bytes, it keeps a
/// crash from losing the bytes of flows that ended since the last checkpoint.
///
/// Format: magic "NCCI" | version u32 | node name (str) | checkpoint checksum u64 | pods,
/// series and pairs as in a checkpoint of the same time (version 4) | checksum u64 (FNV-1a of what precedes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interim {
    /// The node it was written on.
    pub node_name: String,
    /// The checksum of the checkpoint it continues.
    pub checkpoint: u64,
    /// Pods with series.
    pub pods: Vec<PodLabels>,
    /// Exported counters.
    pub series: Vec<SavedSeries>,
    /// Workload pair counters.
    pub pairs: Vec<SavedPair>,
}

/// Writes an interim checkpoint (see [`Interim`]).
///
/// # Errors
///
/// The errors of `out`.
pub fn write_interim(
    out: impl Write,
    node_name: &str,
    checkpoint: u64,
    counters: (&[PodLabels], &[SavedSeries], &[SavedPair]),
) -> io::Result<()> {
    write_interim_as(
        out,
        node_name,
        checkpoint,
        counters,
        (INTERIM_VERSION, Layout::CURRENT),
    )
}

/// [`write_interim`] in the format of an interim `version` of layout `layout`.
fn write_interim_as(
    out: impl Write,
    node_name: &str,
    checkpoint: u64,
    (pods, series, pairs): (&[PodLabels], &[SavedSeries], &[SavedPair]),
    (version, layout): (u32, Layout),
) -> io::Result<()> {
    let mut out = Hashing {
        inner: out,
        hash: FNV_OFFSET,
    };
    out.write_all(INTERIM_MAGIC)?;
    out.write_all(&version.to_le_bytes())?;
    put_str(&mut out, node_name)?;
    out.write_all(&checkpoint.to_le_bytes())?;
    write_counters(&mut out, layout, pods, series, pairs)?;
    let sum = out.hash;
    out.inner.write_all(&sum.to_le_bytes())?;
    out.inner.flush()
}

impl Interim {
    /// Decodes an interim checkpoint, refusing damaged or foreign input.
    pub fn decode(bytes: &[u8]) -> Result<Interim, CheckpointError> {
        let mut r = Reader::open(bytes, bytes.len() as u64, INTERIM_MAGIC)?;
        let version = r.u32()?;
        let layout =
            Layout::of_interim(version).ok_or(CheckpointError::UnsupportedVersion(version))?;
        let node_name = r.string()?;
        let checkpoint = r.u64()?;
        let (pods, series, pairs) = read_counters(&mut r, layout)?;
        r.finish()?;
        Ok(Interim {
            node_name,
            checkpoint,
            pods,
            series,
            pairs,
        })
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv64_update(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// A writer that keeps the FNV-1a hash of everything written through it.
struct Hashing<W> {
    inner: W,
    hash: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash = fnv64_update(self.hash, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn put_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(&(s.len() as u32).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

/// An optional string: u8 0 for none, or 1 and the string.
fn put_optional_str(out: &mut impl Write, s: Option<&str>) -> io::Result<()> {
    match s {
        None => out.write_all(&[0]),
        Some(text) => {
            out.write_all(&[1])?;
            put_str(out, text)
        }
    }
}

fn read_error(e: io::Error, pos: u64) -> CheckpointError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        CheckpointError::Truncated(pos as usize)
    } else {
        CheckpointError::Read(e.to_string())
    }
}

/// Reads the body (everything before the checksum) and hashes what it reads.
struct Reader<R> {
    inner: R,
    pos: u64,
    body_len: u64,
    hash: u64,
}

impl<R: Read> Reader<R> {
    /// A reader of a file of `len` bytes that starts with `magic`.
    fn open(inner: R, len: u64, magic: &[u8; 4]) -> Result<Self, CheckpointError> {
        let body_len = len.checked_sub(8).ok_or(CheckpointError::BadMagic)?;
        let mut r = Reader {
            inner,
            pos: 0,
            body_len,
            hash: FNV_OFFSET,
        };
        let mut found = [0u8; 4];
        r.fill(&mut found).map_err(|_| CheckpointError::BadMagic)?;
        if &found != magic {
            return Err(CheckpointError::BadMagic);
        }
        Ok(r)
    }

    /// Checks that the body was read to its end and that the checksum after it matches;
    /// returns the checksum.
    fn finish(mut self) -> Result<u64, CheckpointError> {
        if self.pos != self.body_len {
            return Err(CheckpointError::Invalid {
                field: "trailing bytes",
            });
        }
        let mut stored = [0u8; 8];
        self.inner
            .read_exact(&mut stored)
            .map_err(|e| read_error(e, self.pos))?;
        if u64::from_le_bytes(stored) != self.hash {
            return Err(CheckpointError::BadChecksum);
        }
        Ok(self.hash)
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), CheckpointError> {
        let end = self.pos.saturating_add(buf.len() as u64);
        if end > self.body_len {
            return Err(CheckpointError::Truncated(self.pos as usize));
        }
        self.inner
            .read_exact(buf)
            .map_err(|e| read_error(e, self.pos))?;
        self.hash = fnv64_update(self.hash, buf);
        self.pos = end;
        Ok(())
    }
    fn u8(&mut self) -> Result<u8, CheckpointError> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }
    fn u32(&mut self) -> Result<u32, CheckpointError> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, CheckpointError> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// A count of records at least `min_size` bytes each, checked against what is left so a
    /// damaged count cannot make us allocate gigabytes.
    fn count(&mut self, min_size: usize) -> Result<usize, CheckpointError> {
        let n = self.u64()?;
        let left = self.body_len - self.pos;
        if n.saturating_mul(min_size as u64) > left {
            return Err(CheckpointError::Truncated(self.pos as usize));
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
        let n = u64::from(self.u32()?);
        if n > self.body_len - self.pos {
            return Err(CheckpointError::Truncated(self.pos as usize));
        }
        let mut b = vec![0u8; n as usize];
        self.fill(&mut b)?;
        String::from_utf8(b).map_err(|_| CheckpointError::Invalid { field: "string" })
    }
    /// What [`put_optional_str`] wrote; `field` names it if the marker byte is neither 0 nor 1.
    fn optional_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Arc<str>>, CheckpointError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(Arc::from(self.string()?))),
            _ => Err(CheckpointError::Invalid { field }),
        }
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
                        remote_region: Some("eu-west-1".into()),
                        nat_gateway: true,
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
                        remote_region: None,
                        nat_gateway: false,
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

    /// `c` encoded as checkpoint format `version`.
    fn encode_as(c: &Checkpoint, version: u32) -> Vec<u8> {
        let layout = Layout::of_checkpoint(version).unwrap_or_else(|| panic!("{version}"));
        let mut out = Vec::new();
        let parts = c.parts();
        write_checkpoint_as(&mut out, parts, version, layout).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    /// `c` as a file of an earlier version holds it: without remote regions and NAT flags, and
    /// without pairs when `pairs` is false.
    fn as_before_regions(mut c: Checkpoint, pairs: bool) -> Checkpoint {
        for s in &mut c.series {
            s.key.remote_region = None;
            s.key.nat_gateway = false;
        }
        if !pairs {
            c.pairs.clear();
        }
        c
    }

    /// Files written by the real writers of earlier versions, from [`sample`] as those versions
    /// could hold it: `checkpoint-v2.bin` by the version 2 writer (commit 6e44a41's parent, the
    /// last with it), `checkpoint-v3.bin` by the version 3 writer (commit 29f1619's parent). They
    /// catch a change to how this version reads those layouts, which an encoder of today cannot.
    const GOLDEN_V2: &[u8] = include_bytes!("../tests/data/checkpoint-v2.bin");
    const GOLDEN_V3: &[u8] = include_bytes!("../tests/data/checkpoint-v3.bin");

    #[test]
    fn a_version_3_checkpoint_is_read_with_no_remote_region() {
        assert_eq!(GOLDEN_V3[4..8], 3u32.to_le_bytes());
        assert_eq!(
            Checkpoint::decode(GOLDEN_V3),
            Ok(as_before_regions(sample(), true))
        );
        // The version 3 layout as this version writes it is byte for byte the old writer's.
        assert_eq!(encode_as(&as_before_regions(sample(), true), 3), GOLDEN_V3);
    }

    #[test]
    fn a_version_2_checkpoint_is_read_without_pairs() {
        assert_eq!(GOLDEN_V2[4..8], 2u32.to_le_bytes());
        assert_eq!(
            Checkpoint::decode(GOLDEN_V2),
            Ok(as_before_regions(sample(), false))
        );
        assert_eq!(encode_as(&as_before_regions(sample(), false), 2), GOLDEN_V2);
    }

    #[test]
    fn an_interim_of_version_1_is_read_with_no_remote_region() {
        let c = sample();
        let mut bytes = Vec::new();
        let layout = Layout::of_interim(1).unwrap_or_else(|| panic!("version 1"));
        write_interim_as(
            &mut bytes,
            "node-a",
            42,
            (&c.pods, &c.series, &c.pairs),
            (1, layout),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let interim = Interim::decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let before = as_before_regions(sample(), true);
        assert_eq!(interim.checkpoint, 42);
        assert_eq!(interim.series, before.series);
        assert_eq!(interim.pairs, before.pairs);
    }

    #[test]
    fn the_remote_region_survives_a_round_trip() {
        let c = sample();
        let decoded = Checkpoint::decode(&c.encode()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            decoded.series[0].key.remote_region.as_deref(),
            Some("eu-west-1")
        );
        assert!(decoded.series[0].key.nat_gateway);
        assert_eq!(decoded, c);
        let mut bytes = Vec::new();
        write_interim(&mut bytes, "node-a", 7, (&c.pods, &c.series, &c.pairs))
            .unwrap_or_else(|e| panic!("{e}"));
        let interim = Interim::decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(interim.series, c.series);
    }

    #[test]
    fn a_damaged_count_is_refused_before_anything_is_allocated() {
        let mut bytes = sample().encode();
        // The baseline count (after magic, version, node name and primed) claims 2^56 entries.
        bytes[26] = 1;
        assert!(matches!(
            Checkpoint::decode(&bytes),
            Err(CheckpointError::Truncated(_))
        ));
    }

    #[test]
    fn a_streamed_read_hands_out_every_baseline() {
        let c = sample();
        let bytes = c.encode();
        let mut seen = Vec::new();
        let read = read_checkpoint(&bytes[..], bytes.len() as u64, &mut |b| seen.push(b));
        assert_eq!(seen, c.baselines);
        assert_eq!(read.map(|(r, _)| r.series), Ok(c.series));
    }

    #[test]
    fn an_interim_checkpoint_round_trips_and_names_its_checkpoint() {
        let c = sample();
        let mut full = Vec::new();
        let parts = c.parts();
        let sum = write_checkpoint(&mut full, parts).expect("in memory");
        assert_eq!(
            read_checkpoint(&full[..], full.len() as u64, &mut |_| {}).map(|(_, s)| s),
            Ok(sum)
        );
        let mut bytes = Vec::new();
        write_interim(&mut bytes, "node-a", sum, (&c.pods, &c.series, &c.pairs))
            .expect("in memory");
        let interim = Interim::decode(&bytes).expect("decodes");
        assert_eq!(
            (interim.checkpoint, interim.series, interim.pairs),
            (sum, c.series, c.pairs)
        );
        for len in 0..bytes.len() {
            assert!(
                Interim::decode(&bytes[..len]).is_err(),
                "accepted {len} bytes"
            );
        }
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
        // Inside the baseline's counter: the layout still parses, only the checksum can tell.
        bytes[36] ^= 0x40;
        assert_eq!(
            Checkpoint::decode(&bytes),
            Err(CheckpointError::BadChecksum)
        );
    }
}
