//! Reads the inventory and the classification config from disk. Core parses text and never
//! touches files, so the reading happens here, at the edge, with errors that name the file.
//!
//! What it does not do: parse or validate (`netcost_core::inventory`, `netcost_core::config`).

use std::path::Path;

use anyhow::{Result, anyhow};
use netcost_core::config::ClassificationConfig;
use netcost_core::inventory::Inventory;

/// The inventory at `path`, parsed.
pub fn inventory(path: &Path) -> Result<Inventory> {
    let text = read(path, "the inventory")?;
    Ok(Inventory::from_yaml_str(&text, path)?)
}

/// The classification config at `path`, parsed and validated.
pub fn config(path: &Path) -> Result<ClassificationConfig> {
    let text = read(path, "the classification config")?;
    Ok(ClassificationConfig::from_yaml_str(&text, path)?)
}

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow!("{}: cannot read {what}: {e}", path.display()))
}
