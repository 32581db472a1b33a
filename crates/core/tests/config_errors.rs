//! Reading Kubecost's classification config: what is accepted, and errors that name the file, the
//! field path and the reason.

use std::net::IpAddr;
use std::path::Path;

use netcost_core::class::TrafficClass;
use netcost_core::config::{ClassificationConfig, ConfigError};

fn parse(yaml: &str) -> Result<ClassificationConfig, ConfigError> {
    ClassificationConfig::from_yaml_str(yaml, Path::new("config.yaml"))
}

fn ok(yaml: &str) -> ClassificationConfig {
    parse(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn error(yaml: &str) -> String {
    match parse(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The file's text; core parses text, reading is the caller's job.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_kubecost_default_holds_the_private_loopback_and_link_local_ranges_in_zone() {
    let c = ClassificationConfig::kubecost_default();
    for addr in [
        "127.0.0.1",
        "169.254.169.254",
        "10.1.2.3",
        "172.31.0.1",
        "192.168.1.1",
    ] {
        assert_eq!(
            c.listed_class(ip(addr)),
            Some(TrafficClass::InZone),
            "{addr}"
        );
    }
    assert_eq!(c.listed_class(ip("172.32.0.1")), None);
    assert!(!c.is_listed_internet(ip("8.8.8.8")));
    assert!(c.amazon_web_services && c.google_cloud_services && c.azure_cloud_services);
}

#[test]
fn the_example_config_is_the_kubecost_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config.yaml");
    let file =
        ClassificationConfig::from_yaml_str(&read(&path), &path).unwrap_or_else(|e| panic!("{e}"));
    let default = ClassificationConfig::kubecost_default();
    for addr in [
        "127.0.0.1",
        "169.254.1.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.0.1",
        "8.8.8.8",
        "::1",
    ] {
        assert_eq!(
            file.listed_class(ip(addr)),
            default.listed_class(ip(addr)),
            "{addr}"
        );
    }
    assert_eq!(
        (
            file.amazon_web_services,
            file.google_cloud_services,
            file.azure_cloud_services
        ),
        (true, true, true)
    );
}

#[test]
fn missing_keys_default_to_empty_and_false() {
    for text in [
        "",
        "destinations: {}\n",
        "services:\n",
        "destinations:\n  in-zone:\n",
    ] {
        let c = ok(text);
        assert_eq!(c.listed_class(ip("10.0.0.1")), None, "{text:?}");
        assert!(!c.amazon_web_services, "{text:?}");
    }
}

#[test]
fn a_bare_ip_is_a_host_prefix_and_host_bits_are_cleared() {
    let c = ok("destinations:\n  in-region: [\"10.1.2.3\", \"2001:db8::1\", \"172.20.5.9/16\"]\n");
    assert_eq!(
        c.listed_class(ip("10.1.2.3")),
        Some(TrafficClass::CrossZone)
    );
    assert_eq!(c.listed_class(ip("10.1.2.4")), None);
    assert_eq!(
        c.listed_class(ip("2001:db8::1")),
        Some(TrafficClass::CrossZone)
    );
    assert_eq!(
        c.listed_class(ip("172.20.200.1")),
        Some(TrafficClass::CrossZone)
    );
}

#[test]
fn an_ipv4_mapped_ipv6_prefix_matches_ipv4_addresses() {
    let c = ok("destinations:\n  cross-region: [\"::ffff:10.0.0.0/104\"]\n");
    assert_eq!(
        c.listed_class(ip("10.9.9.9")),
        Some(TrafficClass::CrossRegion)
    );
}

#[test]
fn an_invalid_cidr_names_its_list_and_index() {
    let msg = error(
        "destinations:\n  in-zone: [\"127.0.0.0/8\", \"169.254.0.0/16\", \"10.0.0.0/8\", \"172.16.0.0/33\"]\n",
    );
    assert!(
        msg.starts_with(
            "config.yaml: destinations.in-zone[3]: \"172.16.0.0/33\" is not a CIDR or IP address"
        ),
        "{msg}"
    );
}

#[test]
fn an_invalid_address_in_direct_classification_names_the_entry() {
    let msg = error(
        "destinations:\n  direct-classification:\n    - region: us-east1\n      ips: [10.0.0.0/24]\n    - region: us-east1\n      zone: us-east1-c\n      ips: [10.0.1.0/24, not-an-ip]\n",
    );
    assert!(
        msg.starts_with("config.yaml: destinations.direct-classification[1].ips[1]: \"not-an-ip\""),
        "{msg}"
    );
}

#[test]
fn a_direct_classification_without_a_region_is_an_error() {
    let msg = error(
        "destinations:\n  direct-classification:\n    - zone: us-east1-c\n      ips: [10.0.0.0/24]\n",
    );
    assert_eq!(
        msg,
        "config.yaml: destinations.direct-classification[0].region: is missing or empty, and is required"
    );
}

#[test]
fn a_user_service_without_a_name_is_an_error() {
    let msg = error("services:\n  services:\n    - ips: [1.2.3.4/32]\n");
    assert_eq!(
        msg,
        "config.yaml: services.services[0].service: is missing or empty, and is required"
    );
}

#[test]
fn an_unknown_key_names_the_key_its_path_and_the_allowed_keys() {
    let msg = error("destinations:\n  in-zone: []\n  in-zones: [10.0.0.0/8]\n");
    assert_eq!(
        msg,
        "config.yaml: destinations.in-zones: unknown field `in-zones`, expected one of `in-zone`, `in-region`, `cross-region`, `internet`, `direct-classification`"
    );
}

#[test]
fn an_unknown_top_level_key_is_an_error() {
    let msg = error("destinatons: {}\n");
    assert_eq!(
        msg,
        "config.yaml: destinatons: unknown field `destinatons`, expected one of `destinations`, `services`, `nat-gateway`"
    );
}

#[test]
fn an_unknown_key_in_a_direct_classification_entry_is_an_error() {
    let msg = error("destinations:\n  direct-classification:\n    - region: x\n      zones: y\n");
    assert!(
        msg.starts_with(
            "config.yaml: destinations.direct-classification[0].zones: unknown field `zones`"
        ),
        "{msg}"
    );
}

#[test]
fn a_value_of_the_wrong_type_names_the_field() {
    let msg = error("services:\n  amazon-web-services: \"maybe\"\n");
    assert_eq!(
        msg,
        "config.yaml: services.amazon-web-services: invalid type: string \"maybe\", expected a boolean"
    );
}

#[test]
fn one_prefix_in_two_lists_is_an_error_naming_both() {
    let msg = error("destinations:\n  in-zone: [10.0.0.0/8]\n  cross-region: [10.0.0.0/8]\n");
    assert_eq!(
        msg,
        "config.yaml: destinations.cross-region[0]: 10.0.0.0/8 is already given at destinations.in-zone[0] with a different meaning; keep one of the two"
    );
}

#[test]
fn one_prefix_twice_in_the_same_list_is_harmless() {
    let c = ok("destinations:\n  in-zone: [10.0.0.0/8, 10.0.0.0/8]\n");
    assert_eq!(c.listed_class(ip("10.0.0.1")), Some(TrafficClass::InZone));
}

#[test]
fn a_yaml_syntax_error_names_the_file() {
    let msg = error("destinations: [\n");
    assert!(
        msg.starts_with("config.yaml: (document): not valid YAML: line "),
        "{msg}"
    );
    // The snippet is headed by the file's name, and the message says "error" no more.
    assert!(msg.contains(" --> config.yaml:"), "{msg}");
    assert!(!msg.contains("<input>") && !msg.contains("error:"), "{msg}");
}

#[test]
fn user_services_resolve_by_most_specific_prefix() {
    let c = ok(
        "services:\n  services:\n    - {service: wide, ips: [52.0.0.0/8]}\n    - {service: narrow, ips: [52.1.0.0/16]}\n",
    );
    assert_eq!(c.service(ip("52.1.2.3")).map(|s| &**s), Some("narrow"));
    assert_eq!(c.service(ip("52.2.2.3")).map(|s| &**s), Some("wide"));
    assert_eq!(c.service(ip("53.0.0.1")), None);
}
