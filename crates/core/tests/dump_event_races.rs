//! Property test of the delta tracker against a model of the kernel in which DESTROY events and
//! dumps race, as they do when the agent reads events while it dumps.
//!
//! The model follows what `nf_conntrack_core.c` and `nf_conntrack_netlink.c` do:
//! - deleting an entry first marks it `IPS_DYING`, then sends the DESTROY event with the final
//!   counters, then unlinks it from the hash table; a dump that walks the table in between
//!   still returns it, marked dying;
//! - a dump walks the table bucket by bucket and builds its messages a batch ahead of the
//!   reader, so the reader may handle an entry's event before it reads an older dump record of
//!   the same entry;
//! - an entry created in a bucket the dump has already passed is not in that dump;
//! - events are delivered reliably and in order (the events socket's reliable mode), and the
//!   agent handles every event queued before it starts a dump before that dump, and those that
//!   arrive during a dump either during it or after it ends.
//!
//! Whatever the interleaving, the bytes the tracker hands out must equal the bytes the flows
//! carried while it was watching: not one more, not one less.

use std::collections::VecDeque;
use std::net::SocketAddr;

use netcost_core::delta::DeltaTracker;
use netcost_core::flow::{FlowRecord, IPS_DYING};
use proptest::prelude::*;

const BUCKETS: u8 = 8;

#[derive(Debug, Clone)]
enum Op {
    /// A new entry in this bucket.
    Open { bucket: u8 },
    /// A live entry gains bytes.
    Grow {
        which: u8,
        original: u16,
        reply: u16,
    },
    /// The kernel begins deleting an entry: marks it dying and queues its DESTROY event.
    Delete { which: u8 },
    /// A dying entry leaves the hash table.
    Unlink { which: u8 },
    /// The agent starts a dump (if none is running), after handling every queued event.
    DumpStart,
    /// The kernel builds the next dump batch: every entry of the next bucket, as it is now.
    DumpStep,
    /// The agent reads the oldest dump batch the kernel has built.
    ReadBatch,
    /// The agent handles the next queued event.
    ReadEvent,
    /// The dump runs to its end; the agent handles `drained` more events, then ends the dump.
    DumpFinish { drained: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..BUCKETS).prop_map(|bucket| Op::Open { bucket }),
        4 => (any::<u8>(), any::<u16>(), any::<u16>())
            .prop_map(|(which, original, reply)| Op::Grow { which, original, reply }),
        2 => any::<u8>().prop_map(|which| Op::Delete { which }),
        2 => any::<u8>().prop_map(|which| Op::Unlink { which }),
        1 => Just(Op::DumpStart),
        3 => Just(Op::DumpStep),
        3 => Just(Op::ReadBatch),
        3 => Just(Op::ReadEvent),
        1 => any::<u8>().prop_map(|drained| Op::DumpFinish { drained }),
    ]
}

#[derive(Debug, Clone)]
struct Entry {
    id: u32,
    bucket: u8,
    original: u64,
    reply: u64,
    dying: bool,
}

impl Entry {
    fn record(&self) -> FlowRecord {
        // One port per entry: the kernel never has two live entries with one tuple.
        let a = SocketAddr::from(([10, 0, 0, 1], 1024 + self.id as u16));
        let b = SocketAddr::from(([10, 0, 0, 2], 53));
        let mut r = FlowRecord::tcp(self.id, a, b, self.original, self.reply);
        if self.dying {
            r.status |= IPS_DYING;
        }
        r
    }
}

struct Model {
    tracker: DeltaTracker,
    table: Vec<Entry>,
    events: VecDeque<FlowRecord>,
    /// The running dump: next bucket to walk, and batches built but not yet read.
    dump: Option<(u8, VecDeque<Vec<FlowRecord>>)>,
    next_id: u32,
    carried: u64,
    counted: u64,
}

impl Model {
    fn new() -> Model {
        let mut tracker = DeltaTracker::new();
        // The agent starts on an empty table: the priming dump sees nothing.
        tracker.begin_dump();
        tracker.end_dump();
        Model {
            tracker,
            table: Vec::new(),
            events: VecDeque::new(),
            dump: None,
            next_id: 1,
            carried: 0,
            counted: 0,
        }
    }

    fn count(&mut self, d: netcost_core::delta::FlowDelta) {
        self.counted += d.original_bytes + d.reply_bytes;
    }

    fn read_event(&mut self) {
        if let Some(e) = self.events.pop_front() {
            let d = self.tracker.observe_destroyed(&e);
            self.count(d);
        }
    }

    fn step_dump(&mut self) {
        if let Some((cursor, batches)) = &mut self.dump
            && *cursor < BUCKETS
        {
            let batch = self
                .table
                .iter()
                .filter(|e| e.bucket == *cursor)
                .map(Entry::record)
                .collect();
            batches.push_back(batch);
            *cursor += 1;
        }
    }

    fn read_batch(&mut self) {
        let Some((_, batches)) = &mut self.dump else {
            return;
        };
        if let Some(batch) = batches.pop_front() {
            for r in batch {
                let d = self.tracker.observe_live(&r);
                self.count(d);
            }
        }
    }

    fn start_dump(&mut self) {
        if self.dump.is_some() {
            return;
        }
        while !self.events.is_empty() {
            self.read_event();
        }
        self.tracker.begin_dump();
        self.dump = Some((0, VecDeque::new()));
    }

    fn finish_dump(&mut self, drained: usize) {
        if self.dump.is_none() {
            return;
        }
        while matches!(&self.dump, Some((cursor, _)) if *cursor < BUCKETS) {
            self.step_dump();
        }
        while matches!(&self.dump, Some((_, b)) if !b.is_empty()) {
            self.read_batch();
        }
        for _ in 0..drained {
            self.read_event();
        }
        self.tracker.end_dump();
        self.dump = None;
    }

    fn apply(&mut self, op: Op) {
        let pick = |table: &[Entry], which: u8, dying: bool| {
            let candidates: Vec<usize> = (0..table.len())
                .filter(|&i| table[i].dying == dying)
                .collect();
            (!candidates.is_empty()).then(|| candidates[usize::from(which) % candidates.len()])
        };
        match op {
            Op::Open { bucket } => {
                self.table.push(Entry {
                    id: self.next_id,
                    bucket,
                    original: 0,
                    reply: 0,
                    dying: false,
                });
                self.next_id += 1;
            }
            Op::Grow {
                which,
                original,
                reply,
            } => {
                if let Some(i) = pick(&self.table, which, false) {
                    self.table[i].original += u64::from(original);
                    self.table[i].reply += u64::from(reply);
                    self.carried += u64::from(original) + u64::from(reply);
                }
            }
            Op::Delete { which } => {
                if let Some(i) = pick(&self.table, which, false) {
                    self.table[i].dying = true;
                    let mut event = self.table[i].record();
                    event.status &= !IPS_DYING;
                    self.events.push_back(event);
                }
            }
            Op::Unlink { which } => {
                if let Some(i) = pick(&self.table, which, true) {
                    self.table.remove(i);
                }
            }
            Op::DumpStart => self.start_dump(),
            Op::DumpStep => self.step_dump(),
            Op::ReadBatch => self.read_batch(),
            Op::ReadEvent => self.read_event(),
            Op::DumpFinish { drained } => self.finish_dump(usize::from(drained % 4)),
        }
    }

    /// Ends everything: the running dump, every entry, every event, then one more cycle.
    fn settle(&mut self) {
        self.finish_dump(0);
        for e in &mut self.table {
            if !e.dying {
                e.dying = true;
                let mut event = e.record();
                event.status &= !IPS_DYING;
                self.events.push_back(event);
            }
        }
        self.table.clear();
        self.start_dump();
        self.finish_dump(0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn every_byte_counts_once_whatever_the_interleaving(ops in prop::collection::vec(op(), 1..300)) {
        let mut model = Model::new();
        for op in ops {
            model.apply(op);
        }
        model.settle();
        prop_assert_eq!(model.counted, model.carried);
        prop_assert!(model.tracker.is_empty(), "{} baselines left", model.tracker.len());
    }
}
