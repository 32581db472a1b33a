//! Every file in `examples/` parses: inventories (`inventory*.yaml`) into a topology, and
//! classification configs (`config*.yaml`) into a config. Other example files belong to other
//! parts of netcost and are checked by their own tests.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netcost_core::config::ClassificationConfig;
use netcost_core::inventory::Inventory;
use netcost_core::topology::Endpoint;

/// The file's text; core parses text, reading is the caller's job.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn every_inventory_and_config_in_examples_parses() {
    let mut checked = 0;
    let entries = std::fs::read_dir(examples()).unwrap_or_else(|e| panic!("examples/: {e}"));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("examples/: {e}")).path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("inventory") && name.ends_with(".yaml") {
            Inventory::from_yaml_str(&read(&path), &path)
                .and_then(|inv| inv.topology())
                .unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        } else if name.starts_with("config") && name.ends_with(".yaml") {
            ClassificationConfig::from_yaml_str(&read(&path), &path)
                .unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected at least examples/inventory.yaml and examples/config.yaml"
    );
}

#[test]
fn the_example_inventory_is_a_three_node_two_region_cluster_with_node_a_on_this_host() {
    let inv = Inventory::from_yaml_str(
        &read(&examples().join("inventory.yaml")),
        Path::new("inventory.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let topo = inv.topology().unwrap_or_else(|e| panic!("{e}"));
    let ip = |t: &str| t.parse::<IpAddr>().unwrap_or_else(|e| panic!("{t}: {e}"));

    let zones: Vec<_> = topo
        .nodes()
        .map(|n| {
            (
                &*n.name,
                n.locality.region.as_deref(),
                n.locality.zone.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        zones,
        [
            ("node-a", Some("us-east-1"), Some("us-east-1a")),
            ("node-b", Some("us-east-1"), Some("us-east-1b")),
            ("node-c", Some("us-west-2"), Some("us-west-2a")),
        ]
    );
    assert!(
        matches!(topo.lookup(ip("192.0.2.2")), Some(Endpoint::Node(n)) if &*n.name == "node-a")
    );

    let on_a: Vec<_> = topo.pods_on_node("node-a").map(|p| &*p.name).collect();
    assert_eq!(
        on_a,
        ["web-7d9f8c6b5-x2x7p", "report-29180000-abcde"],
        "the hostNetwork agent is the node's"
    );

    let web = topo
        .pods()
        .find(|p| &*p.name == "web-7d9f8c6b5-x2x7p")
        .unwrap_or_else(|| panic!("web pod"));
    let owner = web.owner.as_ref().unwrap_or_else(|| panic!("web owner"));
    assert_eq!((&*owner.kind, &*owner.name), ("Deployment", "web"));
    assert!(
        matches!(topo.lookup(ip("10.96.0.10")), Some(Endpoint::ServiceIp(s)) if &*s.name == "web")
    );
}
