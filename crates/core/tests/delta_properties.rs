//! Property tests of the delta tracker against a model of the kernel's table.
//!
//! The model is the ground truth: flows with counters that only grow, which end with a DESTROY
//! event (sometimes lost), and ids the "kernel" reuses. Whatever the interleaving, the bytes the
//! tracker hands out must equal the bytes the flows gained while the tracker was watching, except
//! for the flows whose DESTROY event was lost, which may only lose bytes, never gain them.

use std::net::SocketAddr;

use netcost_core::delta::DeltaTracker;
use netcost_core::flow::FlowRecord;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// A new flow with this id (reusing an id ends the old flow first, as the kernel would).
    Open { id: u8 },
    /// Flow at index `which` (modulo live flows) gains bytes.
    Grow {
        which: u8,
        original: u16,
        reply: u16,
    },
    /// Flow ends; its event reaches the tracker unless `lost`.
    Close { which: u8, lost: bool },
    /// A dump cycle.
    Dump,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..16).prop_map(|id| Op::Open { id }),
        (any::<u8>(), any::<u16>(), any::<u16>()).prop_map(|(which, original, reply)| Op::Grow {
            which,
            original,
            reply
        }),
        (any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(which, lost)| Op::Close { which, lost }),
        Just(Op::Dump),
    ]
}

#[derive(Debug, Clone)]
struct ModelFlow {
    id: u32,
    port: u16,
    original: u64,
    reply: u64,
    /// Bytes gained since the tracker started watching (after the priming dump).
    watched: u64,
}

fn record(f: &ModelFlow) -> FlowRecord {
    let a = SocketAddr::from(([10, 0, 0, 1], f.port));
    let b = SocketAddr::from(([10, 0, 0, 2], 443));
    FlowRecord::tcp(f.id, a, b, f.original, f.reply)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_tracker_counts_every_watched_byte_once(ops in prop::collection::vec(op(), 1..200)) {
        let mut tracker = DeltaTracker::new();
        let mut live: Vec<ModelFlow> = Vec::new();
        let mut counted: u64 = 0;
        let mut expected_exact: u64 = 0;
        let mut lost_upper_bound: u64 = 0;
        // Every new flow gets a new source port: the kernel only hands out an id again for a
        // different tuple or after the old entry is gone, which the fingerprint tells apart.
        let mut next_port: u16 = 1;
        // The priming dump: nothing is being watched yet, so nothing counts.
        tracker.begin_dump();
        tracker.end_dump();

        for op in ops {
            match op {
                Op::Open { id } => {
                    if let Some(pos) = live.iter().position(|f| f.id == u32::from(id)) {
                        // The old entry ends (with its event) before its id is reused.
                        let old = live.remove(pos);
                        let d = tracker.observe_destroyed(&record(&old));
                        counted += d.original_bytes + d.reply_bytes;
                        expected_exact += old.watched;
                    }
                    let port = next_port;
                    next_port = next_port.wrapping_add(1).max(1);
                    live.push(ModelFlow { id: u32::from(id), port, original: 0, reply: 0, watched: 0 });
                }
                Op::Grow { which, original, reply } => {
                    if !live.is_empty() {
                        let n = live.len();
                        let f = &mut live[usize::from(which) % n];
                        f.original += u64::from(original);
                        f.reply += u64::from(reply);
                        f.watched += u64::from(original) + u64::from(reply);
                    }
                }
                Op::Close { which, lost } => {
                    if !live.is_empty() {
                        let n = live.len();
                        let f = live.remove(usize::from(which) % n);
                        if lost {
                            lost_upper_bound += f.watched;
                        } else {
                            let d = tracker.observe_destroyed(&record(&f));
                            counted += d.original_bytes + d.reply_bytes;
                            expected_exact += f.watched;
                        }
                    }
                }
                Op::Dump => {
                    tracker.begin_dump();
                    for f in &live {
                        let d = tracker.observe_live(&record(f));
                        counted += d.original_bytes + d.reply_bytes;
                    }
                    tracker.end_dump();
                }
            }
        }
        // Final reconciliation: one last dump sees what the live flows gained.
        tracker.begin_dump();
        for f in &live {
            let d = tracker.observe_live(&record(f));
            counted += d.original_bytes + d.reply_bytes;
            expected_exact += f.watched;
        }
        tracker.end_dump();

        // Never more than the flows really carried, never less than the flows whose end we saw.
        prop_assert!(counted >= expected_exact, "counted {counted} < exact {expected_exact}");
        prop_assert!(
            counted <= expected_exact + lost_upper_bound,
            "counted {counted} > carried {}", expected_exact + lost_upper_bound
        );
    }

    #[test]
    fn without_lost_events_the_count_is_exact(
        sizes in prop::collection::vec((any::<u16>(), any::<u16>(), 0u8..4), 1..100)
    ) {
        // Flows with distinct ids; each grows, is dumped 0..3 times in between, then closes.
        let mut tracker = DeltaTracker::new();
        tracker.begin_dump();
        tracker.end_dump();
        let mut counted = 0u64;
        let mut sent = 0u64;
        for (i, (original, reply, dumps)) in sizes.into_iter().enumerate() {
            let mut f = ModelFlow { id: i as u32, port: i as u16, original: 0, reply: 0, watched: 0 };
            for _ in 0..dumps {
                f.original += u64::from(original);
                f.reply += u64::from(reply);
                tracker.begin_dump();
                let d = tracker.observe_live(&record(&f));
                counted += d.original_bytes + d.reply_bytes;
                tracker.end_dump();
            }
            f.original += u64::from(original);
            f.reply += u64::from(reply);
            sent += f.original + f.reply;
            let d = tracker.observe_destroyed(&record(&f));
            counted += d.original_bytes + d.reply_bytes;
        }
        prop_assert_eq!(counted, sent);
    }
}
