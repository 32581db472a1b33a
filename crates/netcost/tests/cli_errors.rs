//! The real binary refuses bad input before it starts: it exits non-zero and names the file, the
//! field and the reason. None of these need root: validation happens before any socket is opened.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netcost-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netcost"))
        .arg("agent")
        .args(["--node-name", "node-a", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("LOG_LEVEL", "error")
        .output()
        .unwrap_or_else(|e| panic!("cannot run netcost: {e}"))
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const GOOD_INVENTORY: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: node-a, labels: {topology.kubernetes.io/zone: zone-a}}
  status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
"#;

/// Runs the agent on an inventory (and a config, if given) written to a scratch directory; returns
/// whether it failed and what it printed.
fn agent_on(case: &str, inventory: &str, config: Option<&str>) -> (bool, String) {
    let dir = scratch(case);
    let inventory = write(&dir, "inventory.yaml", inventory);
    let mut args = vec![
        "--inventory".to_owned(),
        inventory.to_string_lossy().into_owned(),
    ];
    if let Some(config) = config {
        let config = write(&dir, "config.yaml", config);
        args.extend(["--config".to_owned(), config.to_string_lossy().into_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = agent(&args);
    (!out.status.success(), stderr_of(&out))
}

#[test]
fn a_pod_ip_that_is_not_an_ip_names_the_file_the_field_and_the_value() {
    let inventory = format!(
        "{GOOD_INVENTORY}- apiVersion: v1\n  kind: Pod\n  metadata: {{name: web-1, namespace: shop, uid: u1}}\n  spec: {{nodeName: node-a, containers: []}}\n  status: {{podIP: 10.0.0.x}}\n"
    );
    let (failed, err) = agent_on("bad-ip", &inventory, None);
    assert!(failed, "{err}");
    assert!(err.contains("inventory.yaml"), "names the file: {err}");
    assert!(
        err.contains("items[1].status.podIP"),
        "names the field: {err}"
    );
    assert!(err.contains("10.0.0.x"), "shows the value: {err}");
}

#[test]
fn an_unknown_config_key_names_the_file_and_the_key() {
    let config = "destinations:\n  in-zoen: [\"10.0.0.0/8\"]\n";
    let (failed, err) = agent_on("bad-config", GOOD_INVENTORY, Some(config));
    assert!(failed, "{err}");
    assert!(err.contains("config.yaml"), "names the file: {err}");
    assert!(err.contains("in-zoen"), "names the key: {err}");
}

#[test]
fn a_cidr_that_does_not_parse_names_its_position_in_the_list() {
    let config = "destinations:\n  in-zone: [\"10.0.0.0/8\", \"172.16.0.0/33\"]\n";
    let (failed, err) = agent_on("bad-cidr", GOOD_INVENTORY, Some(config));
    assert!(failed, "{err}");
    assert!(err.contains("config.yaml"), "{err}");
    assert!(
        err.contains("destinations.in-zone[1]"),
        "names the list entry: {err}"
    );
    assert!(err.contains("172.16.0.0/33"), "shows the value: {err}");
}

#[test]
fn a_missing_inventory_file_is_named() {
    let dir = scratch("missing");
    let missing = dir.join("nope.yaml");
    let out = agent(&["--inventory", missing.to_str().unwrap_or_default()]);
    let err = stderr_of(&out);
    assert!(!out.status.success());
    let expected = format!("{}: cannot read the inventory: ", missing.display());
    assert!(err.contains(&expected), "{err}");
}

#[test]
fn a_missing_config_file_is_named() {
    let dir = scratch("missing-config");
    let inventory = write(&dir, "inventory.yaml", GOOD_INVENTORY);
    let missing = dir.join("nope.yaml");
    let out = agent(&[
        "--inventory",
        inventory.to_str().unwrap_or_default(),
        "--config",
        missing.to_str().unwrap_or_default(),
    ]);
    let err = stderr_of(&out);
    assert!(!out.status.success());
    let expected = format!(
        "{}: cannot read the classification config: ",
        missing.display()
    );
    assert!(err.contains(&expected), "{err}");
}

#[test]
fn a_duration_without_a_unit_is_refused_with_an_example() {
    let out = agent(&["--interval", "10"]);
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(err.contains("--interval") && err.contains("10s"), "{err}");
}

#[test]
fn a_dump_interval_below_a_second_is_refused_with_the_bounds() {
    let out = agent(&["--interval", "1ms"]);
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("--interval") && err.contains("1s to 1h"),
        "{err}"
    );
}

#[test]
fn without_an_inventory_the_agent_says_what_to_pass() {
    let out = agent(&[]);
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(err.contains("--inventory"), "{err}");
}
