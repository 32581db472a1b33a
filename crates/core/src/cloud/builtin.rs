//! The table built into the binary, and its compact encoding.
//!
//! `crates/core/data/cloud-ranges.bin` is generated from the July 2025 snapshots in
//! `data/cloud-ip-ranges/` by `cargo run -p netcost-core --example gen_cloud_ranges`,
//! and a test checks that the committed file is exactly what the generator makes. It holds each
//! provider's [`ProviderData::compacted`] entries, so a table built from it classifies every
//! address exactly as one built from the files.
//!
//! Encoding (all integers unsigned LEB128 unless said otherwise):
//! ```text
//! "NCCR" 1u8                                  magic, version
//! providers u8
//! per provider:
//!   provider u8 (0 aws, 1 gcp, 2 azure)
//!   has_published u8, published u64 LE        publication time, Unix seconds
//!   services; per service: breadth u8 (0 superset, 1 broad, 2 service), len, UTF-8 bytes
//!   regions;  per region: len, UTF-8 bytes
//!   v4 count; per entry: start - previous start, prefix_len u8, service index, region index + 1 (0 = none)
//!   v6 count; the same, with 128-bit starts
//! ```
//! Entries are sorted by address, so the deltas are small: about 6 bytes per kept entry, 344 KB
//! for the July 2025 files.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{Breadth, CloudError, Provider, ProviderData, RangeEntry};

/// The committed table.
const BUILTIN: &[u8] = include_bytes!("../../data/cloud-ranges.bin");

const MAGIC: &[u8; 5] = b"NCCR\x01";

/// The snapshot files the built-in table is generated from, in
/// `data/cloud-ip-ranges/` of the repository, and the order they are encoded in.
pub const SNAPSHOT_FILES: [(Provider, &str); 3] = [
    (Provider::Aws, "aws-ip-ranges.json"),
    (Provider::Gcp, "gcp-cloud.json"),
    (Provider::Azure, "azure-service-tags.json"),
];

/// The built-in providers' data, as of the July 2025 snapshots.
pub fn builtin() -> Result<Vec<ProviderData>, CloudError> {
    decode(BUILTIN)
}

/// Encodes `providers` (each compacted first) in the format of the module docs.
pub fn encode(providers: &[ProviderData]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(providers.len() as u8);
    for data in providers {
        let data = data.compacted();
        out.push(data.provider as u8);
        out.push(u8::from(data.published.is_some()));
        out.extend_from_slice(&data.published.unwrap_or(0).to_le_bytes());

        let mut services: Vec<(&Arc<str>, Breadth)> = data
            .entries
            .iter()
            .map(|e| (&e.service, e.breadth))
            .collect();
        services.sort();
        services.dedup();
        let mut regions: Vec<&Arc<str>> = data
            .entries
            .iter()
            .filter_map(|e| e.region.as_ref())
            .collect();
        regions.sort();
        regions.dedup();
        let service_ids: HashMap<(&str, Breadth), usize> = services
            .iter()
            .enumerate()
            .map(|(i, (s, b))| ((&***s, *b), i))
            .collect();
        let region_ids: HashMap<&str, usize> = regions
            .iter()
            .enumerate()
            .map(|(i, r)| (&***r, i))
            .collect();

        varint(&mut out, services.len() as u128);
        for (name, breadth) in &services {
            out.push(*breadth as u8);
            string(&mut out, name);
        }
        varint(&mut out, regions.len() as u128);
        for r in &regions {
            string(&mut out, r);
        }
        for v6 in [false, true] {
            let family: Vec<&RangeEntry> = data
                .entries
                .iter()
                .filter(|e| matches!(e.net, IpNet::V6(_)) == v6)
                .collect();
            varint(&mut out, family.len() as u128);
            let mut previous = 0u128;
            for e in family {
                let start = match e.net {
                    IpNet::V4(n) => u128::from(u32::from(n.network())),
                    IpNet::V6(n) => u128::from(n.network()),
                };
                varint(&mut out, start - previous);
                previous = start;
                out.push(e.net.prefix_len());
                varint(&mut out, service_ids[&(&*e.service, e.breadth)] as u128);
                varint(
                    &mut out,
                    e.region.as_deref().map_or(0, |r| region_ids[r] + 1) as u128,
                );
            }
        }
    }
    out
}

/// Decodes a table written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Vec<ProviderData>, CloudError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(r.fail("not a netcost cloud ranges table (bad magic or version)"));
    }
    let count = r.byte()?;
    let mut providers = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let provider = match r.byte()? {
            0 => Provider::Aws,
            1 => Provider::Gcp,
            2 => Provider::Azure,
            _ => return Err(r.fail("unknown provider")),
        };
        let has_published = r.byte()? != 0;
        let published = u64::from_le_bytes(
            r.take(8)?
                .try_into()
                .map_err(|_| r.fail("short timestamp"))?,
        );
        let mut services = Vec::new();
        for _ in 0..r.count()? {
            let breadth = match r.byte()? {
                0 => Breadth::Superset,
                1 => Breadth::Broad,
                2 => Breadth::Service,
                _ => return Err(r.fail("unknown breadth")),
            };
            services.push((r.string()?, breadth));
        }
        let mut regions = Vec::new();
        for _ in 0..r.count()? {
            regions.push(r.string()?);
        }
        let mut entries = Vec::new();
        for v6 in [false, true] {
            let mut start = 0u128;
            for _ in 0..r.count()? {
                start = start
                    .checked_add(r.varint()?)
                    .ok_or_else(|| r.fail("address overflow"))?;
                let len = r.byte()?;
                let net = if v6 {
                    Ipv6Net::new(Ipv6Addr::from(start), len).map(IpNet::V6).ok()
                } else {
                    u32::try_from(start)
                        .ok()
                        .and_then(|s| Ipv4Net::new(Ipv4Addr::from(s), len).ok())
                        .map(IpNet::V4)
                }
                .ok_or_else(|| r.fail("bad prefix"))?;
                let (service, breadth) = services
                    .get(r.index()?)
                    .cloned()
                    .ok_or_else(|| r.fail("service index out of range"))?;
                let region = match r.index()? {
                    0 => None,
                    i => Some(
                        regions
                            .get(i - 1)
                            .cloned()
                            .ok_or_else(|| r.fail("region index out of range"))?,
                    ),
                };
                entries.push(RangeEntry {
                    net,
                    service,
                    breadth,
                    region,
                });
            }
        }
        providers.push(ProviderData {
            provider,
            published: has_published.then_some(published),
            entries,
        });
    }
    if r.at != bytes.len() {
        return Err(r.fail("trailing bytes"));
    }
    Ok(providers)
}

fn varint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u128);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn fail(&self, what: &str) -> CloudError {
        CloudError::Builtin {
            reason: format!("{what} at byte {}", self.at),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CloudError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.fail("truncated"));
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, CloudError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u128, CloudError> {
        let mut v = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.fail("varint too long"))
    }

    fn index(&mut self) -> Result<usize, CloudError> {
        usize::try_from(self.varint()?).map_err(|_| self.fail("index too large"))
    }

    fn count(&mut self) -> Result<usize, CloudError> {
        let n = self.index()?;
        // Every item takes at least one byte: a larger count is a damaged file, not a reason to
        // allocate.
        if n > self.bytes.len() - self.at {
            return Err(self.fail("count larger than the file"));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<Arc<str>, CloudError> {
        let n = self.index()?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(Arc::from)
            .map_err(|_| self.fail("string not UTF-8"))
    }
}
