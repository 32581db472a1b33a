//! Replays every file of the fuzz corpus (`fuzz/corpus/<target>/`) through the parsers, with the
//! same checks as the fuzz targets, so that stable CI covers the corpus without cargo-fuzz.

use std::fs;
use std::path::{Path, PathBuf};

use netcost_conntrack::{parse_netlink, parse_proc};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_netlink_corpus_file_parses_without_panicking() {
    let files = corpus("netlink_parse");
    assert!(files.len() >= 10, "the seed corpus is missing: {files:?}");
    for path in files {
        let bytes = fs::read(&path).expect("a readable corpus file");
        let mut entries = 0;
        if let Ok(batch) = parse_netlink(&bytes, &mut |_| entries += 1) {
            assert_eq!(batch.stats.entries, entries, "{}", path.display());
        }
    }
}

#[test]
fn every_proc_corpus_file_parses_without_panicking() {
    let files = corpus("proc_parse");
    assert!(files.len() >= 6, "the seed corpus is missing: {files:?}");
    for path in files {
        let bytes = fs::read(&path).expect("a readable corpus file");
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let mut entries = 0;
        let stats = parse_proc(text, &mut |_| entries += 1);
        assert_eq!(stats.entries, entries, "{}", path.display());
    }
}
