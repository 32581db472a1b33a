//! Feeds arbitrary text to the `/proc/net/nf_conntrack` parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut entries = 0u64;
        let stats = netcost_conntrack::parse_proc(text, &mut |_| entries += 1);
        assert_eq!(stats.entries, entries);
    }
});
