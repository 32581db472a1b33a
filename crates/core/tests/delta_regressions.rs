//! Regression tests for counting bugs found in review (2026-11-25). Each names the bug it pins;
//! the byte figures are the counters the test itself hands to the tracker.

use std::net::SocketAddr;

use netcost_core::aggregate::{Aggregator, Owner, SeriesKey};
use netcost_core::class::{Direction, TrafficClass};
use netcost_core::delta::{DeltaTracker, FlowDelta};
use netcost_core::flow::FlowRecord;

fn record(id: u32, sport: u16, original: u64, reply: u64) -> FlowRecord {
    let a = SocketAddr::from(([10, 1, 1, 10], sport));
    let b = SocketAddr::from(([10, 1, 2, 20], 80));
    FlowRecord::tcp(id, a, b, original, reply)
}

fn total(d: FlowDelta) -> u64 {
    d.original_bytes + d.reply_bytes
}

/// One dump of `records`; returns the bytes it counted.
fn dump(t: &mut DeltaTracker, records: &[FlowRecord]) -> u64 {
    t.begin_dump();
    let counted = records.iter().map(|r| total(t.observe_live(r))).sum();
    t.end_dump();
    counted
}

#[test]
fn two_live_flows_that_share_an_id_are_each_counted_once() {
    // Bug: baselines keyed by id alone; two live flows with one id (the kernel's id is a 32-bit
    // hash) replaced each other's baseline and were counted in full on every dump.
    let mut t = DeltaTracker::new();
    dump(&mut t, &[]);
    let mut counted = 0;
    for step in 1..=3u64 {
        counted += dump(
            &mut t,
            &[
                record(7, 1000, step * 1000, 0),
                record(7, 2000, step * 500, 0),
            ],
        );
    }
    assert_eq!(counted, 3000 + 1500);
}

#[test]
fn a_checkpoint_taken_before_the_first_complete_dump_does_not_count_old_flows() {
    // Bug: a restore always counted entries missing from the checkpoint in full, even when the
    // checkpoint came from an agent whose first dump never completed.
    let mut restored = DeltaTracker::restore(Vec::new(), false);
    assert_eq!(
        dump(&mut restored, &[record(1, 1000, 5_000_000, 9_000_000)]),
        0
    );
    assert_eq!(
        dump(&mut restored, &[record(1, 1000, 5_000_100, 9_000_000)]),
        100
    );
}

#[test]
fn a_destroy_event_read_one_cycle_late_counts_only_the_remainder() {
    // Bug: the sweep forgot an entry as soon as one dump missed it; when its DESTROY event was
    // still queued (the drain has a budget), the event then counted the whole flow again.
    let mut t = DeltaTracker::new();
    dump(&mut t, &[]);
    assert_eq!(dump(&mut t, &[record(3, 1000, 100, 10)]), 110);
    // Destroyed before the next dump reached it; its event is not drained this cycle.
    assert_eq!(dump(&mut t, &[]), 0);
    assert_eq!(total(t.observe_destroyed(&record(3, 1000, 150, 20))), 60);
}

#[test]
fn an_entry_skipped_as_malformed_in_one_dump_is_not_counted_again() {
    // Bug: a malformed entry is skipped by the parser, the sweep dropped its baseline, and the
    // next dump counted its whole life again.
    let mut t = DeltaTracker::new();
    dump(&mut t, &[]);
    assert_eq!(dump(&mut t, &[record(4, 1000, 1000, 0)]), 1000);
    assert_eq!(dump(&mut t, &[]), 0, "skipped as malformed this time");
    assert_eq!(dump(&mut t, &[record(4, 1000, 1200, 0)]), 200);
}

#[test]
fn before_the_first_dump_a_destroy_event_of_an_unknown_flow_counts_nothing() {
    // Bug: with nf_conntrack_events=1 (the default before 5.19) every entry sends events, so an
    // event before the first dump may end a flow that ran long before the agent started.
    let mut t = DeltaTracker::new();
    assert_eq!(
        total(t.observe_destroyed(&record(5, 1000, 7_000_000, 1))),
        0
    );
    dump(&mut t, &[]);
    assert_eq!(
        total(t.observe_destroyed(&record(6, 1000, 1028, 528))),
        1556
    );
}

fn key(service: &str) -> SeriesKey {
    SeriesKey {
        owner: Owner::Node,
        direction: Direction::Egress,
        class: TrafficClass::Internet,
        service: Some(service.into()),
        remote_region: None,
        nat_gateway: false,
    }
}

fn exported(a: &Aggregator, service: &str) -> Option<u64> {
    a.export()
        .into_iter()
        .find(|s| s.service.as_deref() == Some(service))
        .map(|s| s.value)
}

#[test]
fn a_new_series_waits_for_a_scrape_even_when_the_clock_reads_wall_time() {
    // Bug: the wait was measured from the series' creation at time 0, so with wall-clock
    // milliseconds the very first step released the bytes before any scrape.
    let wall_clock_ms = 1_764_000_000_000;
    let mut a = Aggregator::new(600_000, 600_000);
    a.add(key("partner"), 4_000, wall_clock_ms);
    a.advance(wall_clock_ms + 1_000);
    assert_eq!(exported(&a, "partner"), Some(0));
    a.advance(wall_clock_ms + 600_000);
    assert_eq!(
        exported(&a, "partner"),
        Some(4_000),
        "released after the timeout"
    );
}

#[test]
fn pending_bytes_survive_a_restart_as_pending() {
    // Bug: a checkpoint saved pending bytes as exported, so after a restart a series nobody had
    // seen at zero was born with bytes in its first sample, which increase() ignores.
    let mut a = Aggregator::new(600_000, 600_000);
    a.add(key("partner"), 4_000, 1_000);
    let (saved, _) = a.saved();
    let mut restored = Aggregator::new(600_000, 600_000);
    for s in saved {
        restored.restore_series(s, 2_000);
    }
    assert_eq!(exported(&restored, "partner"), Some(0));
    let generation = restored.generation();
    restored.advance(3_000);
    restored.note_scraped(generation);
    restored.advance(4_000);
    assert_eq!(exported(&restored, "partner"), Some(4_000));
}
