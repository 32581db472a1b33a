//! Reading inventory files: the accepted shapes, and errors that name the file, the field and the
//! reason.

use std::path::Path;

use netcost_core::inventory::{Inventory, InventoryError};
use netcost_core::topology::Endpoint;

fn parse(yaml: &str) -> Result<Inventory, InventoryError> {
    Inventory::from_yaml_str(yaml, Path::new("inv.yaml"))
}

fn error(yaml: &str) -> String {
    match parse(yaml).and_then(|inv| inv.topology().map(|_| inv)) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n";
const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: default, uid: u1}\nspec: {nodeName: node-a}\nstatus: {podIP: 10.244.0.5}\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 10.96.0.10}\n";

#[test]
fn a_multi_document_stream_of_nodes_pods_and_services_is_read() {
    let inv = parse(&format!("{NODE}---\n{POD}---\n{SERVICE}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (inv.nodes.len(), inv.pods.len(), inv.services.len()),
        (1, 1, 1)
    );
    let topo = inv.topology().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(topo.lookup("10.96.0.10".parse().unwrap_or_else(|e| panic!("{e}"))), Some(Endpoint::ServiceIp(s)) if &*s.name == "web")
    );
}

#[test]
fn a_kubectl_list_is_read() {
    let yaml = "apiVersion: v1\nkind: List\nitems:\n".to_owned()
        + &[NODE, POD, SERVICE]
            .iter()
            .map(|doc| indent_item(doc))
            .collect::<String>();
    let inv = parse(&yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (inv.nodes.len(), inv.pods.len(), inv.services.len()),
        (1, 1, 1)
    );
}

#[test]
fn a_list_inside_a_stream_is_read() {
    let list = format!("apiVersion: v1\nkind: List\nitems:\n{}", indent_item(POD));
    let inv = parse(&format!("{NODE}---\n{list}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((inv.nodes.len(), inv.pods.len()), (1, 1));
}

/// Turns a document into a `- ` item of a YAML list.
fn indent_item(doc: &str) -> String {
    let mut out = String::new();
    for (i, line) in doc.lines().enumerate() {
        out.push_str(if i == 0 { "  - " } else { "    " });
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn an_empty_file_is_an_error_that_names_the_file() {
    for text in ["", "# nothing here\n", "---\n"] {
        let msg = error(text);
        assert!(msg.starts_with("inv.yaml: "), "{msg}");
        assert!(msg.contains("holds no objects"), "{msg}");
    }
}

#[test]
fn an_unknown_kind_names_the_document_and_the_accepted_kinds() {
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";
    let msg = error(&format!("{NODE}---\n{POD}---\n{deployment}"));
    assert_eq!(
        msg,
        "inv.yaml: document 3: kind: \"Deployment\" is not accepted here; expected Node, Pod, Service or List"
    );
}

#[test]
fn a_missing_kind_is_an_error() {
    let msg = error("apiVersion: v1\nmetadata: {name: x}\n");
    assert_eq!(
        msg,
        "inv.yaml: kind: is missing; expected Node, Pod, Service or List"
    );
}

#[test]
fn a_field_of_the_wrong_type_is_named_by_its_path_in_the_list() {
    let bad_pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-2, uid: u2}\nspec:\n  nodeName: [node-a]\n";
    let yaml = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}{}{}",
        indent_item(NODE),
        indent_item(POD),
        indent_item(bad_pod)
    );
    let msg = error(&yaml);
    assert!(
        msg.starts_with("inv.yaml: items[2].spec.nodeName: "),
        "{msg}"
    );
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn a_field_of_the_wrong_type_is_named_by_document_in_a_stream() {
    let bad = "apiVersion: v1\nkind: Node\nmetadata: {name: node-b}\nstatus:\n  addresses:\n    - {type: InternalIP, address: 10.0.0.1}\n    - {type: InternalIP, address: {ip: 10.0.0.2}}\n";
    let msg = error(&format!("{NODE}---\n{bad}"));
    assert!(
        msg.starts_with("inv.yaml: document 2: status.addresses[1].address: "),
        "{msg}"
    );
}

#[test]
fn a_wrong_api_version_is_named() {
    let msg = error("apiVersion: v2\nkind: Pod\nmetadata: {name: x, uid: u}\n");
    assert!(msg.starts_with("inv.yaml: apiVersion: "), "{msg}");
    assert!(msg.contains("v2"), "{msg}");
}

#[test]
fn an_invalid_pod_ip_names_the_document_the_field_and_the_pod() {
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-2, namespace: default, uid: u2}\nstatus: {podIP: 10.0.0.x}\n";
    let msg = error(&format!("{NODE}---\n{POD}---\n{bad}"));
    assert_eq!(
        msg,
        "inv.yaml: document 3: status.podIP: Pod default/web-2: \"10.0.0.x\" is not an IP address"
    );
}

#[test]
fn an_invalid_pod_ip_in_a_list_names_the_item() {
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: default, uid: u2}\nstatus:\n  podIPs: [{ip: 10.0.0.1}, {ip: 10.0.0.x}]\n";
    let yaml = format!(
        "kind: List\nitems:\n{}{}",
        indent_item(NODE),
        indent_item(bad)
    );
    assert_eq!(
        error(&yaml),
        "inv.yaml: items[1].status.podIPs[1].ip: Pod default/web-1: \"10.0.0.x\" is not an IP address"
    );
}

#[test]
fn a_pod_without_a_uid_is_an_error() {
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-9, namespace: shop}\n";
    assert_eq!(
        error(bad),
        "inv.yaml: metadata.uid: Pod shop/web-9: is missing or empty, and is required"
    );
}

#[test]
fn a_pod_without_a_name_is_an_error() {
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {namespace: shop, uid: u9}\n";
    let msg = error(&format!("{NODE}---\n{bad}"));
    assert_eq!(
        msg,
        "inv.yaml: document 2: metadata.name: Pod shop/#0 (unnamed): is missing or empty, and is required"
    );
}

#[test]
fn an_invalid_pod_cidr_is_an_error() {
    let bad = "apiVersion: v1\nkind: Node\nmetadata: {name: node-b}\nspec: {podCIDRs: [10.244.1.0/24, 10.244.2.0/33]}\n";
    let msg = error(bad);
    assert!(
        msg.starts_with("inv.yaml: spec.podCIDRs[1]: Node node-b: \"10.244.2.0/33\" is not a CIDR"),
        "{msg}"
    );
}

#[test]
fn an_invalid_cluster_ip_is_an_error() {
    let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\nspec: {clusterIPs: [None, 10.96.0.300]}\n";
    assert_eq!(
        error(bad),
        "inv.yaml: spec.clusterIPs[1]: Service shop/db: \"10.96.0.300\" is not an IP address"
    );
}

#[test]
fn two_nodes_with_one_name_are_an_error() {
    let msg = error(&format!("{NODE}---\n{NODE}"));
    assert_eq!(
        msg,
        "inv.yaml: document 2: metadata.name: Node node-a: \"node-a\" is already used by Node node-a"
    );
}

#[test]
fn a_yaml_syntax_error_names_the_file() {
    let msg = error("kind: Node\nmetadata: {name: [unclosed\n");
    assert!(
        msg.starts_with("inv.yaml: (document): not valid YAML: line "),
        "{msg}"
    );
    // The snippet is headed by the file's name, and the message says "error" no more.
    assert!(msg.contains(" --> inv.yaml:"), "{msg}");
    assert!(!msg.contains("<input>") && !msg.contains("error:"), "{msg}");
}

#[test]
fn a_document_that_is_not_a_mapping_is_an_error() {
    let msg = error(&format!("{NODE}---\n- just\n- a list\n"));
    assert_eq!(
        msg,
        "inv.yaml: document 2: expected a Kubernetes object (a mapping with `kind`), found a list"
    );
}
