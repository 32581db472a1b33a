//! The baseline table: an open-addressing hash table sized for a million entries in little
//! memory, with no allocation spike when it grows.
//!
//! Why not `std::collections::HashMap`: its bucket count is a power of two and it grows by
//! doubling, so at 1M entries of 24 bytes it holds 2^21 buckets (≈ 52 MiB), and while it doubles
//! both tables are alive (≈ 78 MiB). Here:
//! - the table is split into 64 shards by the hash's top bits; a shard grows alone, so growing
//!   costs 1/64 of the table at a time, not the whole table twice;
//! - a shard's capacity is any size (positions come from a multiply-shift, not a mask) and it
//!   grows by half, between 57% and 85% full: ≈ 34 MiB at 1M entries;
//! - linear probing over 24-byte slots, with backward-shift deletion (no tombstones), so lookups
//!   stay short under churn, and a slot's emptiness is a flag bit in the baseline itself.

use super::Baseline;

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
const MIN_CAPACITY: usize = 16;

#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    baseline: Baseline,
}

impl Slot {
    const EMPTY: Slot = Slot {
        key: 0,
        baseline: Baseline::EMPTY,
    };
}

/// Mixes a key so that the top bits choose a shard and the low 32 bits a position. Keys are
/// `id << 32 | fingerprint`; ids may be sequential (the simulator's are scattered, the kernel's
/// hashed), so both halves are folded in before the multiply.
fn hash(key: u64) -> u64 {
    let h = (key ^ (key >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

#[derive(Default)]
struct Shard {
    slots: Vec<Slot>,
    len: usize,
}

impl Shard {
    fn home(&self, h: u64) -> usize {
        (((h & 0xffff_ffff) * self.slots.len() as u64) >> 32) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    /// `Ok(position)` of `key`, or `Err(position)` of the empty slot where it would go. The shard
    /// always has an empty slot, so the probe ends.
    fn find(&self, key: u64, h: u64) -> Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(0);
        }
        let mut i = self.home(h);
        loop {
            let slot = &self.slots[i];
            if !slot.baseline.occupied() {
                return Err(i);
            }
            if slot.key == key {
                return Ok(i);
            }
            i = self.next(i);
        }
    }

    /// Makes room for one more entry, keeping the load at or below 85%.
    fn reserve_one(&mut self) {
        let capacity = self.slots.len();
        if (self.len + 1) * 20 > capacity * 17 {
            self.resize((capacity + capacity / 2).max(MIN_CAPACITY));
        }
    }

    fn resize(&mut self, capacity: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::EMPTY; capacity]);
        for slot in old.into_iter().filter(|s| s.baseline.occupied()) {
            if let Err(i) = self.find(slot.key, hash(slot.key)) {
                self.slots[i] = slot;
            }
        }
    }

    /// Empties position `hole` and moves later members of its cluster back, so that every entry
    /// stays reachable from its home without tombstones.
    fn delete_at(&mut self, mut hole: usize) {
        let mut j = hole;
        loop {
            j = self.next(j);
            let slot = self.slots[j];
            if !slot.baseline.occupied() {
                break;
            }
            let home = self.home(hash(slot.key));
            // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = slot;
                hole = j;
            }
        }
        self.slots[hole] = Slot::EMPTY;
        self.len -= 1;
    }
}

/// Baselines by `(id, fingerprint)` key. See the module docs.
pub(super) struct BaselineTable {
    shards: Vec<Shard>,
    len: usize,
}

impl Default for BaselineTable {
    fn default() -> Self {
        BaselineTable {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            len: 0,
        }
    }
}

impl BaselineTable {
    fn shard_of(h: u64) -> usize {
        (h >> (64 - SHARD_BITS)) as usize
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The baseline of `key`, inserting `new` if there is none; true when it was inserted.
    pub(super) fn get_or_insert(&mut self, key: u64, new: Baseline) -> (&mut Baseline, bool) {
        let h = hash(key);
        let shard = &mut self.shards[Self::shard_of(h)];
        let found = match shard.find(key, h) {
            Ok(i) => Ok(i),
            Err(_) => {
                shard.reserve_one();
                shard.find(key, h)
            }
        };
        match found {
            Ok(i) => (&mut shard.slots[i].baseline, false),
            Err(i) => {
                shard.slots[i] = Slot { key, baseline: new };
                shard.len += 1;
                self.len += 1;
                (&mut shard.slots[i].baseline, true)
            }
        }
    }

    /// The baseline of `key`, if there is one.
    pub(super) fn get_mut(&mut self, key: u64) -> Option<&mut Baseline> {
        let h = hash(key);
        let shard = &mut self.shards[Self::shard_of(h)];
        let i = shard.find(key, h).ok()?;
        Some(&mut shard.slots[i].baseline)
    }

    /// Removes and returns the baseline of `key`.
    pub(super) fn remove(&mut self, key: u64) -> Option<Baseline> {
        let h = hash(key);
        let shard = &mut self.shards[Self::shard_of(h)];
        let i = shard.find(key, h).ok()?;
        let baseline = shard.slots[i].baseline;
        shard.delete_at(i);
        self.len -= 1;
        Some(baseline)
    }

    /// Keeps the entries for which `keep` returns true; `keep` sees each entry once and may
    /// change it. Shards that became mostly empty shrink.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut Baseline) -> bool) {
        let mut removed = 0;
        for shard in &mut self.shards {
            let capacity = shard.slots.len();
            // Start just after an empty slot: no cluster then wraps past the scan's start, so the
            // entries a deletion moves back are always ones the scan has not reached yet.
            let Some(start) = shard.slots.iter().position(|s| !s.baseline.occupied()) else {
                continue;
            };
            let mut i = shard.next(start);
            let mut steps = 1;
            while steps < capacity {
                let slot = &mut shard.slots[i];
                if slot.baseline.occupied() && !keep(&mut slot.baseline) {
                    // The next entry of the cluster may now sit at `i`: look at `i` again.
                    shard.delete_at(i);
                    removed += 1;
                    continue;
                }
                i = shard.next(i);
                steps += 1;
            }
            if shard.len * 4 < capacity && capacity > MIN_CAPACITY {
                shard.resize((shard.len * 2).max(MIN_CAPACITY));
            }
        }
        self.len -= removed;
    }

    /// Every entry, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &Baseline)> + '_ {
        self.shards
            .iter()
            .flat_map(|s| s.slots.iter())
            .filter(|s| s.baseline.occupied())
            .map(|s| (s.key, &s.baseline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A deterministic key stream with the shape of real keys: scattered ids, and now and then
    /// the same id with another fingerprint.
    fn keys(n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(|i| {
            let id = (i / 2).wrapping_mul(0x9e37_79b1) & 0xffff_ffff;
            (id << 32) | (i % 2 + 7)
        })
    }

    fn baseline(v: u64) -> Baseline {
        Baseline::new(false, v, v + 1)
    }

    #[test]
    fn the_table_agrees_with_a_hash_map_through_inserts_removals_and_sweeps() {
        let mut table = BaselineTable::default();
        let mut model: HashMap<u64, u64> = HashMap::new();
        for (n, key) in keys(20_000).enumerate() {
            let (_, inserted) = table.get_or_insert(key, baseline(n as u64));
            assert!(inserted);
            model.insert(key, n as u64);
            if n % 3 == 0 {
                let victim = keys(n as u64 + 1).nth(n / 2).unwrap_or(key);
                assert_eq!(
                    table.remove(victim).map(|b| b.original()),
                    model.remove(&victim)
                );
            }
        }
        // A sweep keeps the even values.
        table.retain(|b| b.original() % 2 == 0);
        model.retain(|_, v| *v % 2 == 0);
        assert_eq!(table.len(), model.len());
        for (key, value) in &model {
            let (b, inserted) = table.get_or_insert(*key, baseline(0));
            assert!(!inserted);
            assert_eq!(b.original(), *value);
        }
        let listed: HashMap<u64, u64> = table.iter().map(|(k, b)| (k, b.original())).collect();
        assert_eq!(listed, model);
    }

    #[test]
    fn a_sweep_that_removes_almost_everything_shrinks_the_table() {
        let mut table = BaselineTable::default();
        for (n, key) in keys(50_000).enumerate() {
            table.get_or_insert(key, baseline(n as u64));
        }
        let full: usize = table.shards.iter().map(|s| s.slots.len()).sum();
        table.retain(|b| b.original() < 100);
        let after: usize = table.shards.iter().map(|s| s.slots.len()).sum();
        assert_eq!(table.len(), 100);
        assert!(after * 10 < full, "{after} slots of {full} kept");
        for (n, key) in keys(100).enumerate() {
            assert!(!table.get_or_insert(key, baseline(0)).1, "entry {n} lost");
        }
    }
}
