//! Per-flow baselines: turn the kernel's cumulative counters into byte deltas.
//!
//! The kernel reports, for every live entry, the bytes it has counted since the entry was created.
//! To export counters that only grow, the agent remembers, per entry, what it has already counted
//! (the baseline) and hands on the difference. DESTROY events carry an entry's final counters; the
//! tracker counts their remainder and forgets the entry.
//!
//! Rules that keep bytes from being counted twice or going negative:
//! - An entry is known by its `CTA_ID` *and* a fingerprint of its original tuple and zone, as one
//!   key. The kernel's id is a 32-bit hash that it calls "almost unique": at a million entries
//!   about a hundred live pairs share one, and an id is reused for new entries. Keying by both
//!   keeps two live flows with one id apart, and counts a reused id's new flow from zero.
//! - A counter lower than its baseline means the counters were reset (for instance by another
//!   tool's `CTRZERO` request): the current value is counted as new bytes, never a negative delta.
//! - The first dump of an agent that starts without a checkpoint only records baselines: bytes an
//!   entry carried before the agent started happened before it was watching. Entries that appear
//!   later are new flows and count from zero.
//! - An entry missing from one dump is kept until it is also missing from the next one, then
//!   forgotten. Its DESTROY event may still be queued (a drain has a budget), or the entry may
//!   have been skipped as malformed; forgetting it at once would count its whole life again when
//!   the event or the next dump arrives. [`SweepStats::vanished`] counts the forgotten ones: if
//!   their event was lost, their last bytes are lost too.
//! - Until the first dump has ended, a DESTROY event of an unknown entry counts nothing: on
//!   kernels that send events for every entry (`nf_conntrack_events=1`, the default before
//!   5.19), it may be a flow that was running long before the agent started.
//!
//! Events and dumps race, because DESTROY events are read while a dump is in progress (the
//! agent never stops reading events, or the kernel's queue would overflow). Two rules keep a
//! dump from resurrecting an entry whose final counters were already counted:
//! - The kernel builds a dump's messages a batch ahead of the reader, so an entry may appear in
//!   a dump *after* its DESTROY event was handled. A DESTROY handled during a dump therefore
//!   leaves a tombstone with the final counters until the dump ends; a dump record that matches
//!   a tombstone with counters no higher than the final ones is that stale view and counts
//!   nothing. (Higher counters mean the kernel reused the id and tuple for a new flow, which
//!   counts from zero like any new entry.)
//! - `nf_ct_delete` marks an entry `IPS_DYING` before it sends the event and unlinks it after.
//!   A dump record marked dying never creates a baseline: its event carries the final counters,
//!   and may already have been counted.
//!
//! The alternative design, `IPCTNL_MSG_CT_GET_CTRZERO`, needs no baselines but zeroes the counters
//! for every other reader of the table; netcost does not use it, so other tools keep seeing true
//! totals.
//!
//! Memory: one entry is 24 bytes (an 8-byte key, two 8-byte counters whose top bits hold the
//! sweep flags, the tombstone flag and the slot's occupancy), in a table kept 57–85% full that never doubles at once:
//! about 34 MiB at a million entries. See `table.rs` for why not `std`'s `HashMap`.

mod table;

use crate::flow::{FlowRecord, FlowTuple, IPS_DYING};
use table::BaselineTable;

/// Bytes newly counted for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowDelta {
    /// New bytes in the original direction (sent by the original source).
    pub original_bytes: u64,
    /// New bytes in the reply direction (received by the original source).
    pub reply_bytes: u64,
}

impl FlowDelta {
    /// True when nothing new was counted.
    pub fn is_zero(&self) -> bool {
        self.original_bytes == 0 && self.reply_bytes == 0
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepStats {
    /// Entries that disappeared from the table without a DESTROY event reaching the agent.
    pub vanished: u64,
}

/// A baseline as persisted in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedBaseline {
    /// `CTA_ID`.
    pub id: u32,
    /// Fingerprint of the original tuple and zone (see [`fingerprint`]).
    pub fingerprint: u32,
    /// Original-direction bytes already counted.
    pub original_bytes: u64,
    /// Reply-direction bytes already counted.
    pub reply_bytes: u64,
}

/// The bytes already counted for one entry. The top two bits of `reply` are the sweep flags; the
/// top bit of `original` marks the table slot as used and the next one a tombstone. That caps a
/// counter at 2^62 bytes (4 EiB), far above anything one flow carries.
#[derive(Clone, Copy)]
struct Baseline {
    original: u64,
    reply: u64,
}

/// Generation of the last dump that saw the entry (or marked it missed).
const GENERATION_BIT: u64 = 1 << 63;
/// The entry was missing from one dump; missing from the next too, it is forgotten.
const MISSED_BIT: u64 = 1 << 62;
const COUNTER_MASK: u64 = MISSED_BIT - 1;
/// In `original`: the table slot holds an entry.
const OCCUPIED_BIT: u64 = 1 << 63;
/// In `original`: the entry was destroyed during the current dump; its counters are final.
const TOMBSTONE_BIT: u64 = 1 << 62;

impl Baseline {
    /// An unused table slot.
    const EMPTY: Baseline = Baseline {
        original: 0,
        reply: 0,
    };
    fn occupied(&self) -> bool {
        self.original & OCCUPIED_BIT != 0
    }
    fn new(generation: bool, original: u64, reply: u64) -> Self {
        let mut b = Baseline {
            original: 0,
            reply: 0,
        };
        b.set(generation, original, reply);
        b
    }
    /// The final counters of an entry destroyed during the current dump.
    fn tombstone(original: u64, reply: u64) -> Self {
        Baseline {
            original: original.min(COUNTER_MASK) | OCCUPIED_BIT | TOMBSTONE_BIT,
            reply: reply.min(COUNTER_MASK),
        }
    }
    fn is_tombstone(&self) -> bool {
        self.original & TOMBSTONE_BIT != 0
    }
    fn original(&self) -> u64 {
        self.original & COUNTER_MASK
    }
    fn reply(&self) -> u64 {
        self.reply & COUNTER_MASK
    }
    fn generation(&self) -> bool {
        self.reply & GENERATION_BIT != 0
    }
    fn missed(&self) -> bool {
        self.reply & MISSED_BIT != 0
    }
    /// Records counters seen by the dump of `generation`, clearing the missed flag.
    fn set(&mut self, generation: bool, original: u64, reply: u64) {
        self.original = original.min(COUNTER_MASK) | OCCUPIED_BIT;
        self.reply = reply.min(COUNTER_MASK) | if generation { GENERATION_BIT } else { 0 };
    }
    /// Marks the entry missed by the dump of `generation`.
    fn mark_missed(&mut self, generation: bool) {
        self.reply =
            (self.reply & COUNTER_MASK) | MISSED_BIT | if generation { GENERATION_BIT } else { 0 };
    }
}

fn key(id: u32, fingerprint: u32) -> u64 {
    (u64::from(id) << 32) | u64::from(fingerprint)
}

/// A 32-bit fingerprint of an entry's identity: its original tuple and zone. Entries with equal
/// ids but different fingerprints are different flows.
pub fn fingerprint(zone: u16, original: &FlowTuple) -> u32 {
    // FNV-1a over the identity fields; stable across runs, so it can be checkpointed.
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    };
    eat(&zone.to_be_bytes());
    eat(&[original.protocol]);
    match original.src {
        std::net::IpAddr::V4(a) => eat(&a.octets()),
        std::net::IpAddr::V6(a) => eat(&a.octets()),
    }
    match original.dst {
        std::net::IpAddr::V4(a) => eat(&a.octets()),
        std::net::IpAddr::V6(a) => eat(&a.octets()),
    }
    eat(&original.src_port.to_be_bytes());
    eat(&original.dst_port.to_be_bytes());
    h
}

/// Per-flow baselines and the rules that turn counters into deltas. See the module docs.
pub struct DeltaTracker {
    baselines: BaselineTable,
    generation: bool,
    /// False until the first dump ended; during it, live entries are baselined, not counted.
    primed: bool,
    /// Between `begin_dump` and `end_dump`: DESTROY events leave tombstones.
    dumping: bool,
}

impl Default for DeltaTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl DeltaTracker {
    /// A tracker for an agent that starts fresh: its first dump only records baselines.
    pub fn new() -> Self {
        DeltaTracker {
            baselines: BaselineTable::default(),
            generation: false,
            primed: false,
            dumping: false,
        }
    }

    /// A tracker restored from a checkpoint. If the checkpoint was `primed` (written after a
    /// complete first dump), entries missing from `saved` are new since it and count from zero;
    /// otherwise the next dump only takes baselines, as on a fresh start.
    pub fn restore(saved: impl IntoIterator<Item = SavedBaseline>, primed: bool) -> Self {
        let mut tracker = DeltaTracker::new();
        for s in saved {
            tracker.insert_saved(s);
        }
        tracker.set_primed(primed);
        tracker
    }

    /// Adds one baseline of a checkpoint being read (see [`DeltaTracker::restore`]).
    pub fn insert_saved(&mut self, s: SavedBaseline) {
        let saved = Baseline::new(false, s.original_bytes, s.reply_bytes);
        *self
            .baselines
            .get_or_insert(key(s.id, s.fingerprint), saved)
            .0 = saved;
    }

    /// Sets whether a complete first dump has been seen, as a checkpoint being read says.
    pub fn set_primed(&mut self, primed: bool) {
        self.primed = primed;
    }

    /// The baselines, for a checkpoint.
    pub fn saved(&self) -> impl Iterator<Item = SavedBaseline> + '_ {
        self.baselines
            .iter()
            .filter(|(_, b)| !b.is_tombstone())
            .map(|(key, b)| SavedBaseline {
                id: (key >> 32) as u32,
                fingerprint: key as u32,
                original_bytes: b.original(),
                reply_bytes: b.reply(),
            })
    }

    /// How many baselines [`DeltaTracker::saved`] yields, without walking the table when no
    /// dump is under way (tombstones exist only during one).
    pub fn saved_len(&self) -> usize {
        if self.dumping {
            self.saved().count()
        } else {
            self.baselines.len()
        }
    }

    /// True once a dump has ended: entries new from now on count from zero.
    pub fn is_primed(&self) -> bool {
        self.primed
    }

    /// Number of entries with a baseline (during a dump, tombstones too).
    pub fn len(&self) -> usize {
        self.baselines.len()
    }

    /// True when no entry has a baseline.
    pub fn is_empty(&self) -> bool {
        self.baselines.len() == 0
    }

    /// Starts a dump: entries observed from now on are marked as seen by it.
    pub fn begin_dump(&mut self) {
        self.generation = !self.generation;
        self.dumping = true;
    }

    /// Takes a live entry from a dump and returns the bytes it gained since it was last seen.
    pub fn observe_live(&mut self, record: &FlowRecord) -> FlowDelta {
        let key = key(record.id, fingerprint(record.zone, &record.original));
        let original = record.original_counters.bytes;
        let reply = record.reply_counters.bytes;
        let generation = self.generation;
        let primed = self.primed;
        if record.status & IPS_DYING != 0 {
            // Its DESTROY event is on its way or already counted: update, never create.
            return match self.baselines.get_mut(key) {
                Some(b) if !b.is_tombstone() => {
                    let delta = delta_against(b, original, reply);
                    b.set(generation, original, reply);
                    delta
                }
                _ => FlowDelta::default(),
            };
        }
        let (b, inserted) = self
            .baselines
            .get_or_insert(key, Baseline::new(generation, original, reply));
        let reused_key = !inserted && b.is_tombstone();
        if reused_key && original <= b.original() && reply <= b.reply() {
            // A view of the entry from before its DESTROY, which was already counted.
            return FlowDelta::default();
        }
        if inserted || reused_key {
            b.set(generation, original, reply);
            return if primed {
                FlowDelta {
                    original_bytes: original,
                    reply_bytes: reply,
                }
            } else {
                FlowDelta::default()
            };
        }
        let delta = delta_against(b, original, reply);
        b.set(generation, original, reply);
        delta
    }

    /// Takes an entry from a DESTROY event (final counters), returns its remaining bytes and
    /// forgets it. During a dump it leaves a tombstone until the dump ends (see the module docs).
    pub fn observe_destroyed(&mut self, record: &FlowRecord) -> FlowDelta {
        let key = key(record.id, fingerprint(record.zone, &record.original));
        let original = record.original_counters.bytes;
        let reply = record.reply_counters.bytes;
        let delta = match self.baselines.remove(key) {
            Some(b) if !b.is_tombstone() => delta_against(&b, original, reply),
            // Never seen by a dump: it was born and died between two dumps (or, after a
            // tombstone, reused the key of one that died during this dump), so all of its bytes
            // are new; unless no dump has ended yet, when it may predate the agent.
            _ if self.primed => FlowDelta {
                original_bytes: original,
                reply_bytes: reply,
            },
            _ => FlowDelta::default(),
        };
        if self.dumping {
            let tombstone = Baseline::tombstone(original, reply);
            *self.baselines.get_or_insert(key, tombstone).0 = tombstone;
        }
        delta
    }

    /// Ends a dump: drops its tombstones, marks entries it did not see as missed, and forgets
    /// those missed twice.
    pub fn end_dump(&mut self) -> SweepStats {
        let generation = self.generation;
        let mut vanished = 0;
        self.baselines.retain(|b| {
            if b.is_tombstone() {
                return false;
            }
            if b.generation() == generation {
                return true;
            }
            if b.missed() {
                vanished += 1;
                return false;
            }
            b.mark_missed(generation);
            true
        });
        self.primed = true;
        self.dumping = false;
        SweepStats { vanished }
    }
}

fn delta_against(b: &Baseline, original: u64, reply: u64) -> FlowDelta {
    FlowDelta {
        original_bytes: grown(b.original(), original),
        reply_bytes: grown(b.reply(), reply),
    }
}

/// Bytes gained by a counter; after a reset (value below the baseline) the whole value is new.
fn grown(baseline: u64, now: u64) -> u64 {
    if now >= baseline { now - baseline } else { now }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn record(id: u32, sport: u16, original: u64, reply: u64) -> FlowRecord {
        let a = SocketAddr::from(([10, 1, 1, 10], sport));
        let b = SocketAddr::from(([10, 1, 2, 20], 80));
        FlowRecord::tcp(id, a, b, original, reply)
    }

    fn dump(t: &mut DeltaTracker, records: &[FlowRecord]) -> (u64, u64) {
        t.begin_dump();
        let mut sum = (0, 0);
        for r in records {
            let d = t.observe_live(r);
            sum.0 += d.original_bytes;
            sum.1 += d.reply_bytes;
        }
        t.end_dump();
        sum
    }

    #[test]
    fn the_first_dump_only_records_baselines() {
        let mut t = DeltaTracker::new();
        assert_eq!(dump(&mut t, &[record(1, 1000, 500, 700)]), (0, 0));
        assert_eq!(dump(&mut t, &[record(1, 1000, 800, 750)]), (300, 50));
    }

    #[test]
    fn an_entry_that_appears_after_the_first_dump_counts_from_zero() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[]);
        assert_eq!(dump(&mut t, &[record(7, 1000, 500, 700)]), (500, 700));
    }

    #[test]
    fn a_reused_id_with_another_tuple_is_a_new_flow() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[]);
        dump(&mut t, &[record(1, 1000, 5000, 5000)]);
        assert_eq!(dump(&mut t, &[record(1, 2000, 100, 10)]), (100, 10));
    }

    #[test]
    fn a_counter_reset_never_yields_negative_bytes() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[]);
        dump(&mut t, &[record(1, 1000, 5000, 5000)]);
        assert_eq!(dump(&mut t, &[record(1, 1000, 40, 5100)]), (40, 100));
    }

    #[test]
    fn a_destroy_event_counts_the_remainder_once() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[]);
        dump(&mut t, &[record(1, 1000, 100, 50)]);
        assert_eq!(
            t.observe_destroyed(&record(1, 1000, 180, 90)),
            FlowDelta {
                original_bytes: 80,
                reply_bytes: 40
            }
        );
        assert!(t.is_empty());
        // A later dump cannot see it any more; a duplicate event would be a new id's business.
        assert_eq!(dump(&mut t, &[]), (0, 0));
    }

    #[test]
    fn a_flow_born_and_destroyed_between_dumps_counts_in_full() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[]);
        let d = t.observe_destroyed(&record(9, 1000, 1028, 528));
        assert_eq!((d.original_bytes, d.reply_bytes), (1028, 528));
    }

    #[test]
    fn entries_missing_from_two_dumps_in_a_row_are_swept() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[record(1, 1, 1, 1), record(2, 2, 2, 2)]);
        for expected_vanished in [0, 1] {
            t.begin_dump();
            t.observe_live(&record(1, 1, 1, 1));
            assert_eq!(t.end_dump().vanished, expected_vanished);
        }
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_restored_tracker_continues_from_its_baselines() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[]);
        dump(&mut t, &[record(1, 1000, 100, 100)]);
        let saved: Vec<_> = t.saved().collect();
        let mut restored = DeltaTracker::restore(saved, true);
        assert_eq!(
            dump(
                &mut restored,
                &[record(1, 1000, 150, 120), record(2, 5, 10, 20)]
            ),
            (60, 40)
        );
    }

    #[test]
    fn a_destroy_handled_during_a_dump_is_not_undone_by_the_dumps_stale_record() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[]);
        dump(&mut t, &[record(1, 1000, 100, 50)]);
        t.begin_dump();
        // The event overtakes the dump batch that still holds the entry as it was at 150/70.
        let d = t.observe_destroyed(&record(1, 1000, 180, 90));
        assert_eq!((d.original_bytes, d.reply_bytes), (80, 40));
        assert!(t.observe_live(&record(1, 1000, 150, 70)).is_zero());
        t.end_dump();
        assert!(t.is_empty(), "the tombstone outlived its dump");
        assert_eq!(dump(&mut t, &[]), (0, 0));
    }

    #[test]
    fn a_flow_born_and_destroyed_during_a_dump_counts_once_whatever_the_order() {
        for event_first in [true, false] {
            let mut t = DeltaTracker::new();
            dump(&mut t, &[]);
            t.begin_dump();
            let mut counted = 0;
            let stale = record(4, 1000, 60, 0);
            let last = record(4, 1000, 156, 0);
            if event_first {
                counted += t.observe_destroyed(&last).original_bytes;
                counted += t.observe_live(&stale).original_bytes;
            } else {
                counted += t.observe_live(&stale).original_bytes;
                counted += t.observe_destroyed(&last).original_bytes;
            }
            t.end_dump();
            assert_eq!(counted, 156, "event first: {event_first}");
            assert!(t.is_empty());
        }
    }

    #[test]
    fn a_dying_record_updates_a_baseline_but_never_creates_one() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[]);
        let mut dying = record(2, 1000, 300, 0);
        dying.status |= IPS_DYING;
        // Its event was handled before this dump began: nothing more to count.
        assert_eq!(
            t.observe_destroyed(&record(2, 1000, 300, 0)).original_bytes,
            300
        );
        assert_eq!(dump(&mut t, &[dying]), (0, 0));
        assert!(t.is_empty());
        // Known to an earlier dump: the dying record still counts its growth.
        dump(&mut t, &[record(3, 1000, 100, 0)]);
        let mut dying = record(3, 1000, 250, 0);
        dying.status |= IPS_DYING;
        assert_eq!(dump(&mut t, &[dying]), (150, 0));
        assert_eq!(
            t.observe_destroyed(&record(3, 1000, 260, 0)).original_bytes,
            10
        );
    }

    #[test]
    fn a_key_reused_after_a_tombstone_counts_the_new_flow() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[]);
        t.begin_dump();
        assert_eq!(
            t.observe_destroyed(&record(5, 1000, 100, 0)).original_bytes,
            100
        );
        // Same id and tuple, more bytes than the dead entry ever had: a new flow.
        assert_eq!(t.observe_live(&record(5, 1000, 400, 0)).original_bytes, 400);
        t.end_dump();
        assert_eq!(
            t.observe_destroyed(&record(5, 1000, 450, 0)).original_bytes,
            50
        );
    }

    #[test]
    fn a_checkpoint_holds_no_tombstones() {
        let mut t = DeltaTracker::new();
        dump(&mut t, &[record(5, 1000, 1, 1)]);
        t.begin_dump();
        t.observe_destroyed(&record(6, 1000, 10, 10));
        assert_eq!((t.saved().count(), t.saved_len()), (1, 1));
        t.end_dump();
        assert_eq!((t.saved().count(), t.saved_len()), (1, 1));
    }

    #[test]
    fn a_baseline_costs_24_bytes() {
        assert_eq!(std::mem::size_of::<(u64, Baseline)>(), 24);
    }
}
