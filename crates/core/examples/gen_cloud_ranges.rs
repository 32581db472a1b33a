//! Regenerates the built-in cloud ranges table from the providers' snapshot files.
//!
//! ```sh
//! cargo run -p netcost-core --example gen_cloud_ranges -- [DATA_DIR] [OUT]
//! ```
//! `DATA_DIR` defaults to `data/cloud-ip-ranges` of the repository and `OUT` to
//! `crates/core/data/cloud-ranges.bin`. The test
//! `builtin_table_is_exactly_what_the_generator_makes_from_the_july_2025_files` fails until the
//! committed file matches.

use std::path::PathBuf;

use netcost_core::cloud::builtin::{SNAPSHOT_FILES, encode};
use netcost_core::cloud::parse::parse;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args_os().skip(1);
    let dir = args.next().map_or_else(
        || manifest.join("../../data/cloud-ip-ranges"),
        PathBuf::from,
    );
    let out = args
        .next()
        .map_or_else(|| manifest.join("data/cloud-ranges.bin"), PathBuf::from);
    let mut providers = Vec::new();
    for (provider, name) in SNAPSHOT_FILES {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        providers.push(parse(provider, &bytes, &path.display().to_string())?);
    }
    let table = encode(&providers);
    std::fs::write(&out, &table).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{}: {} bytes", out.display(), table.len());
    Ok(())
}
