//! The merged lookup table: published prefixes flattened into disjoint intervals.
//!
//! Published prefixes nest (a prefix either contains another or is disjoint from it), so one
//! sweep in address order with a stack of the prefixes that are open at the current address
//! finds, for every stretch between two prefix boundaries, the winning entry by the rules of the
//! module docs. Adjacent stretches with the same winner merge. What remains is a sorted list of
//! interval starts per family, with the index of a [`Tag`] (or none) for each.
//!
//! A lookup reads a bucket index on the address's top 16 bits, which narrows the search to the
//! intervals that start in that /16 (v4) or /16 (v6), then binary-searches them. With the July
//! 2025 files that is at most a few hundred intervals for IPv4.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{Breadth, Provider, ProviderData, RangeEntry, Tag, in_region_class};

/// The priority of an entry: larger wins. See the module docs of [`super`] for the rules.
pub(super) fn rank(e: &RangeEntry) -> impl Ord + use<'_> {
    (
        e.breadth != Breadth::Superset,
        e.net.prefix_len(),
        e.breadth,
        e.region.is_some(),
        Reverse(&e.service),
        Reverse(&e.region),
    )
}

const NONE: u32 = u32::MAX;

/// Sorted disjoint intervals of one address family, covering its whole space.
#[derive(Debug, Clone, Default)]
struct Family<A> {
    /// Start of each interval; the first is 0, each runs to the next start.
    starts: Vec<A>,
    /// Tag index of each interval, or [`NONE`].
    tags: Vec<u32>,
    /// `index[b]` is the first interval whose start's top 16 bits are `>= b`; 65537 entries.
    index: Vec<u32>,
}

trait Addr: Copy + Ord + Default {
    fn from_u128(v: u128) -> Self;
    fn top16(self) -> usize;
}

impl Addr for u32 {
    fn from_u128(v: u128) -> Self {
        v as u32
    }
    fn top16(self) -> usize {
        (self >> 16) as usize
    }
}

impl Addr for u128 {
    fn from_u128(v: u128) -> Self {
        v
    }
    fn top16(self) -> usize {
        (self >> 112) as usize
    }
}

impl<A: Addr> Family<A> {
    fn new(intervals: Vec<(u128, u32)>) -> Self {
        let starts: Vec<A> = intervals.iter().map(|(s, _)| A::from_u128(*s)).collect();
        let tags: Vec<u32> = intervals.iter().map(|(_, t)| *t).collect();
        let mut index = Vec::with_capacity(65_537);
        let mut i = 0usize;
        for bucket in 0..=65_536usize {
            while i < starts.len() && starts[i].top16() < bucket {
                i += 1;
            }
            index.push(i as u32);
        }
        Family {
            starts,
            tags,
            index,
        }
    }

    #[inline]
    fn lookup(&self, addr: A) -> u32 {
        let b = addr.top16();
        let (Some(&lo), Some(&hi)) = (self.index.get(b), self.index.get(b + 1)) else {
            return NONE;
        };
        let (lo, hi) = (lo as usize, hi as usize);
        let within = self
            .starts
            .get(lo..hi)
            .map_or(0, |s| s.partition_point(|&x| x <= addr));
        // The interval holding `addr` is the last one starting at or before it; when none starts
        // in this bucket at or before `addr`, it is the one that began in an earlier bucket.
        match (lo + within).checked_sub(1) {
            Some(i) => self.tags.get(i).copied().unwrap_or(NONE),
            None => NONE,
        }
    }

    fn bytes(&self) -> usize {
        self.starts.capacity() * size_of::<A>() + (self.tags.capacity() + self.index.capacity()) * 4
    }
}

/// The merged ranges of the providers that are switched on. Build once, share behind an `Arc`,
/// replace whole on refresh.
#[derive(Debug, Clone, Default)]
pub struct CloudRanges {
    v4: Family<u32>,
    v6: Family<u128>,
    tags: Vec<Tag>,
    /// Regions each provider publishes, sorted, to tell "another region of this provider" from
    /// "not this provider's cloud".
    regions: [Vec<Arc<str>>; 3],
    prefixes: usize,
}

impl CloudRanges {
    /// Merges `providers` into one table. A provider given twice counts twice; callers pass each
    /// once.
    pub fn build<'a>(providers: impl IntoIterator<Item = &'a ProviderData>) -> CloudRanges {
        let mut entries: Vec<(&RangeEntry, Provider)> = Vec::new();
        let mut regions: [Vec<Arc<str>>; 3] = Default::default();
        for data in providers {
            for e in &data.entries {
                entries.push((e, data.provider));
                if let Some(r) = &e.region {
                    regions[data.provider.index()].push(r.clone());
                }
            }
        }
        for r in &mut regions {
            r.sort();
            r.dedup();
        }
        let prefixes = entries.len();
        let mut tags = Vec::new();
        let mut tag_ids: HashMap<TagKey, u32> = HashMap::new();
        let mut tag_of = |e: &RangeEntry, p: Provider| -> u32 {
            *tag_ids
                .entry((p, e.service.clone(), e.region.clone()))
                .or_insert_with(|| {
                    tags.push(Tag {
                        provider: p,
                        service: e.service.clone(),
                        region: e.region.clone(),
                        in_region: in_region_class(&e.service),
                    });
                    (tags.len() - 1) as u32
                })
        };
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (e, p) in &entries {
            let item = (e.net, *e, *p);
            match e.net {
                IpNet::V4(_) => v4.push(item),
                IpNet::V6(_) => v6.push(item),
            }
        }
        let v4 = flatten(v4, 32, &mut tag_of);
        let v6 = flatten(v6, 128, &mut tag_of);
        CloudRanges {
            v4: Family::new(v4),
            v6: Family::new(v6),
            tags,
            regions,
            prefixes,
        }
    }

    /// The winning range of `ip`, if any. IPv4-mapped IPv6 is looked up as IPv4.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<&Tag> {
        let id = match ip.to_canonical() {
            IpAddr::V4(v4) => self.v4.lookup(u32::from(v4)),
            IpAddr::V6(v6) => self.v6.lookup(u128::from(v6)),
        };
        self.tags.get(id as usize)
    }

    /// Whether `provider` publishes ranges in `region`.
    pub fn has_region(&self, provider: Provider, region: &str) -> bool {
        self.regions[provider.index()]
            .binary_search_by(|r| (**r).cmp(region))
            .is_ok()
    }

    /// Published prefixes merged into this table.
    pub fn prefixes(&self) -> usize {
        self.prefixes
    }

    /// Disjoint intervals the lookup searches (IPv4 + IPv6).
    pub fn intervals(&self) -> usize {
        self.v4.starts.len() + self.v6.starts.len()
    }

    /// Heap bytes the table holds (approximate: vectors' capacities, tag structs, and one copy of
    /// each distinct service and region string).
    pub fn memory_bytes(&self) -> usize {
        let strings: usize = self
            .tags
            .iter()
            .map(|t| t.service.len() + t.region.as_deref().map_or(0, str::len))
            .sum();
        let regions: usize = self
            .regions
            .iter()
            .map(|r| r.capacity() * size_of::<Arc<str>>())
            .sum();
        self.v4.bytes()
            + self.v6.bytes()
            + self.tags.capacity() * size_of::<Tag>()
            + strings
            + regions
    }
}

type Item<'a> = (IpNet, &'a RangeEntry, Provider);

/// What makes two winners the same tag: provider, service, region.
type TagKey = (Provider, Arc<str>, Option<Arc<str>>);

/// Disjoint intervals `(start, tag)` covering `0..2^bits`, from nested prefixes.
fn flatten<'a>(
    mut items: Vec<Item<'a>>,
    bits: u32,
    tag_of: &mut impl FnMut(&RangeEntry, Provider) -> u32,
) -> Vec<(u128, u32)> {
    let start = |n: &IpNet| -> u128 {
        match n {
            IpNet::V4(v) => u128::from(u32::from(v.network())),
            IpNet::V6(v) => u128::from(v.network()),
        }
    };
    let end = |n: &IpNet| -> u128 {
        let host_bits = bits - u32::from(n.prefix_len());
        let span = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        start(n) | span
    };
    // Containing prefixes first: by start, then shorter prefix first.
    items.sort_by_key(|(n, _, _)| (start(n), n.prefix_len()));

    let mut out: Vec<(u128, u32)> = Vec::new();
    let mut emit = |at: u128, tag: u32| {
        if out.last().is_some_and(|&(_, t)| t == tag) {
            return;
        }
        out.push((at, tag));
    };
    // The open prefixes, outermost first; each is nested in the one below it.
    let mut stack: Vec<(u128, &Item<'a>)> = Vec::new();
    let winner = |stack: &[(u128, &Item<'a>)],
                  tag_of: &mut dyn FnMut(&RangeEntry, Provider) -> u32| {
        stack
            .iter()
            .max_by(|a, b| rank(a.1.1).cmp(&rank(b.1.1)))
            .map_or(NONE, |(_, (_, e, p))| tag_of(e, *p))
    };
    // `cursor` is the first address not yet emitted; `None` once the whole space is done.
    let mut cursor: Option<u128> = Some(0);
    for item in &items {
        let s = start(&item.0);
        // Close every open prefix that ends before this one starts.
        while let Some(&(e, _)) = stack.last() {
            if e >= s {
                break;
            }
            // Identical prefixes end together: only the first of them has anything left.
            if let Some(c) = cursor
                && c <= e
            {
                emit(c, winner(&stack, tag_of));
                cursor = e.checked_add(1);
            }
            stack.pop();
        }
        if let Some(c) = cursor
            && c < s
        {
            emit(c, winner(&stack, tag_of));
        }
        cursor = Some(s);
        stack.push((end(&item.0), item));
    }
    while let Some(&(e, _)) = stack.last() {
        if let Some(c) = cursor
            && c <= e
        {
            emit(c, winner(&stack, tag_of));
            cursor = e.checked_add(1);
        }
        stack.pop();
    }
    let space_end = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if let Some(c) = cursor
        && c <= space_end
    {
        emit(c, NONE);
    }
    if out.first().is_none_or(|&(s, _)| s != 0) {
        out.insert(0, (0, NONE));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(net: &str, service: &str, breadth: Breadth, region: Option<&str>) -> RangeEntry {
        RangeEntry {
            net: net.parse().unwrap_or_else(|e| panic!("{net}: {e}")),
            service: Arc::from(service),
            breadth,
            region: region.map(Arc::from),
        }
    }

    fn service_at(t: &CloudRanges, ip: &str) -> Option<String> {
        let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
        t.lookup(ip).map(|t| t.service.to_string())
    }

    #[test]
    fn nested_prefixes_split_into_intervals_with_the_right_winner() {
        let data = ProviderData {
            provider: Provider::Aws,
            published: None,
            entries: vec![
                entry("10.0.0.0/8", "aws-amazon", Breadth::Superset, Some("r1")),
                entry("10.1.0.0/16", "aws-ec2", Breadth::Broad, Some("r1")),
                entry("10.1.2.0/24", "aws-s3", Breadth::Service, Some("r1")),
                entry("10.1.2.128/25", "aws-amazon", Breadth::Superset, Some("r1")),
                entry("255.255.255.255/32", "aws-last", Breadth::Service, None),
            ],
        };
        let t = CloudRanges::build([&data]);
        assert_eq!(service_at(&t, "9.255.255.255"), None);
        assert_eq!(service_at(&t, "10.0.0.0").as_deref(), Some("aws-amazon"));
        assert_eq!(service_at(&t, "10.1.0.0").as_deref(), Some("aws-ec2"));
        assert_eq!(service_at(&t, "10.1.2.1").as_deref(), Some("aws-s3"));
        // A longer superset prefix does not beat the service around it.
        assert_eq!(service_at(&t, "10.1.2.200").as_deref(), Some("aws-s3"));
        assert_eq!(service_at(&t, "10.1.3.0").as_deref(), Some("aws-ec2"));
        assert_eq!(service_at(&t, "10.2.0.0").as_deref(), Some("aws-amazon"));
        assert_eq!(service_at(&t, "11.0.0.0"), None);
        assert_eq!(service_at(&t, "255.255.255.254"), None);
        assert_eq!(
            service_at(&t, "255.255.255.255").as_deref(),
            Some("aws-last")
        );
        assert_eq!(service_at(&t, "::"), None);
    }
}
