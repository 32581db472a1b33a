//! Feeds arbitrary bytes to the ctnetlink parser, as if one `recv` had returned them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut entries = 0u64;
    if let Ok(batch) = netcost_conntrack::parse_netlink(data, &mut |_| entries += 1) {
        assert_eq!(batch.stats.entries, entries);
    }
});
