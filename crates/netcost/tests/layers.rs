//! The workspace's layers, checked from the source: the library crates depend only downwards
//! (the order is the table below, which docs/architecture.md draws), and the modules of
//! `netcost-core` import one another without a circle. Run by `cargo test`, so a change that
//! breaks either fails CI with the edge that did it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each library crate's layer: a crate may depend only on crates of a lower layer. The binary
/// crate `netcost` sits above them all and wires them together.
const LAYERS: [(&str, u8); 8] = [
    ("netcost-core", 0),
    ("netcost-conntrack", 1),
    ("netcost-k8s", 1),
    ("netcost-cost", 1),
    ("netcost-store", 1),
    ("netcost-sim", 2),
    ("netcost-agent", 2),
    ("netcost-server", 2),
];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `netcost-*` names in a manifest's `[dependencies]` table (not dev- or build-).
fn netcost_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut in_dependencies = false;
    let mut found = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if !in_dependencies {
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
        if name.starts_with("netcost-") {
            found.insert(name.to_owned());
        }
    }
    found
}

#[test]
fn library_crates_depend_only_on_lower_layers() {
    let layer: BTreeMap<&str, u8> = LAYERS.into_iter().collect();
    let mut checked = 0;
    let entries = std::fs::read_dir(crates_dir()).unwrap_or_else(|e| panic!("crates/: {e}"));
    for entry in entries {
        let manifest = entry
            .unwrap_or_else(|e| panic!("{e}"))
            .path()
            .join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let text = read(&manifest);
        let name = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = "))
            .map(|n| n.trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("{}: no package name", manifest.display()));
        if name == "netcost" {
            continue;
        }
        let Some(&own) = layer.get(name.as_str()) else {
            panic!(
                "{name} is not in LAYERS: give it a layer in this test and in docs/architecture.md"
            );
        };
        for dependency in netcost_dependencies(&text) {
            let theirs = layer
                .get(dependency.as_str())
                .unwrap_or_else(|| panic!("{name} depends on {dependency}, which has no layer"));
            assert!(
                *theirs < own,
                "{name} (layer {own}) depends on {dependency} (layer {theirs}): a library crate may only depend on lower layers"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, LAYERS.len(), "every library crate was read");
}

/// The top-level module of each file under `src` (`topology/index.rs` is `topology`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    first.unwrap_or_default().trim_end_matches(".rs").to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules a line of code names as `crate::module`, also inside `crate::{a, b::c}`.
fn crate_paths(line: &str, out: &mut BTreeSet<String>) {
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in line.match_indices("crate::") {
        let rest = &line[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or_default();
            out.extend(group.split(',').map(ident).filter(|m| !m.is_empty()));
        } else {
            out.insert(ident(rest));
        }
    }
}

#[test]
fn core_modules_import_one_another_without_a_circle() {
    let src = crates_dir().join("core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let named = imports.entry(module.clone()).or_default();
        for line in read(file).lines() {
            // Doc links name modules without depending on them.
            if line.trim_start().starts_with("//") {
                continue;
            }
            crate_paths(line, named);
        }
        named.remove(&module);
    }
    assert!(imports.len() >= 10, "read core's modules: {imports:?}");
    // Depth-first search; a module met again while on the path closes a circle.
    fn visit<'a>(
        module: &'a str,
        imports: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!(
                "core's modules import in a circle: {} -> {module}",
                path[at..].join(" -> ")
            );
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for next in imports.get(module).into_iter().flatten() {
            visit(next, imports, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in imports.keys() {
        visit(module, &imports, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_circle_check_sees_grouped_and_plain_paths() {
    let mut found = BTreeSet::new();
    crate_paths(
        "use crate::{class::TrafficClass, topology}; let x = crate::cloud::Provider::Aws;",
        &mut found,
    );
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["class", "cloud", "topology"]);
}
