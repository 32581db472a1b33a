//! The parsers allocate nothing: counted with a global allocator that tallies this thread's
//! allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use netcost_conntrack::{parse_netlink, parse_proc};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the tally is a
// const-initialised thread-local Cell, which itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn parsing_a_kernel_dump_allocates_nothing() {
    let dump = include_bytes!("data/dump_table.bin");
    let mut bytes = 0;
    let allocations = allocations_during(|| {
        let batch = parse_netlink(dump, &mut |r| bytes += r.original_counters.bytes);
        assert!(batch.is_ok_and(|b| b.stats.entries == 6));
    });
    assert_eq!(allocations, 0);
    assert!(bytes > 0);
}

#[test]
fn parsing_proc_text_allocates_nothing() {
    let text = include_str!("data/proc_table.txt");
    let mut entries = 0;
    let allocations = allocations_during(|| {
        let stats = parse_proc(text, &mut |_| entries += 1);
        assert_eq!(stats.entries, 6);
    });
    assert_eq!(allocations, 0);
    assert_eq!(entries, 6);
}

#[test]
fn the_tally_sees_an_allocation() {
    let allocations = allocations_during(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(allocations, 1);
}
