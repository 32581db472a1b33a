//! Cloud-service tagging against the providers' real published files (July 2025 snapshots in
//! `data/cloud-ip-ranges/` of the repository). Every expected service and region
//! below was read from those files; the prefix it comes from is named beside it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use netcost_core::class::TrafficClass;
use netcost_core::classify::{Classification, Classifier};
use netcost_core::cloud::builtin::{SNAPSHOT_FILES, builtin, decode, encode};
use netcost_core::cloud::parse::{aws, azure, gcp, parse};
use netcost_core::cloud::{CloudError, CloudRanges, Provider, ProviderData};
use netcost_core::config::ClassificationConfig;
use netcost_core::topology::{Locality, Topology};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cloud-ip-ranges")
}

fn read(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The three files, parsed once per test binary.
fn files() -> &'static [ProviderData] {
    static FILES: OnceLock<Vec<ProviderData>> = OnceLock::new();
    FILES.get_or_init(|| {
        SNAPSHOT_FILES
            .iter()
            .map(|(provider, name)| {
                parse(*provider, &read(name), name).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    })
}

fn table() -> &'static CloudRanges {
    static TABLE: OnceLock<CloudRanges> = OnceLock::new();
    TABLE.get_or_init(|| CloudRanges::build(files()))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn tag_of(table: &CloudRanges, addr: &str) -> Option<(String, Option<String>)> {
    table.lookup(ip(addr)).map(|t| {
        (
            t.service.to_string(),
            t.region.as_deref().map(str::to_owned),
        )
    })
}

fn region(name: &str) -> Locality {
    Locality {
        zone: Some(format!("{name}a").into()),
        region: Some(name.into()),
    }
}

fn yaml_config(text: &str) -> ClassificationConfig {
    ClassificationConfig::from_yaml_str(text, Path::new("test.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_july_2025_files_hold_about_a_hundred_thousand_prefixes() {
    let counts: Vec<(Provider, usize)> = files()
        .iter()
        .map(|d| (d.provider, d.entries.len()))
        .collect();
    // AWS: 8971 IPv4 + 4373 IPv6 entries; Google: 782; Azure: 90493 addressPrefixes.
    assert_eq!(
        counts,
        [
            (Provider::Aws, 13_344),
            (Provider::Gcp, 782),
            (Provider::Azure, 90_493)
        ]
    );
    assert_eq!(table().prefixes(), 104_619);
    // AWS createDate 2025-07-24-20-23-14 (= its syncToken 1753388594); Google creationTime
    // 2025-07-24T19:16:28.780563; Azure's file carries no date.
    let published: Vec<Option<u64>> = files().iter().map(|d| d.published).collect();
    assert_eq!(published, [Some(1_753_388_594), Some(1_753_384_588), None]);
}

#[test]
fn known_addresses_resolve_to_the_service_and_region_of_their_published_range() {
    let cases = [
        // AWS 54.231.0.0/16 S3 us-east-1 (and AMAZON).
        ("54.231.10.20", "aws-s3", Some("us-east-1")),
        // AWS 2a05:d034:8000::/40 S3 eu-west-1.
        ("2a05:d034:8000::1", "aws-s3", Some("eu-west-1")),
        // AWS 3.218.180.0/22 DYNAMODB us-east-1.
        ("3.218.180.7", "aws-dynamodb", Some("us-east-1")),
        // AWS 3.4.12.4/32 AMAZON eu-west-1 only.
        ("3.4.12.4", "aws-amazon", Some("eu-west-1")),
        // AWS 205.251.249.0/24 CLOUDFRONT GLOBAL.
        ("205.251.249.1", "aws-cloudfront", None),
        // Google 8.34.210.0/24 us-central1; 2600:1900:8000::/44 africa-south1; 34.8.0.0/16 global.
        ("8.34.210.99", "gcp-cloud", Some("us-central1")),
        ("2600:1900:8000::5", "gcp-cloud", Some("africa-south1")),
        ("34.8.1.1", "gcp-cloud", None),
        // Azure Storage.EastUS 13.68.163.32/28 and 2603:1030:213::/49 (both also in AzureCloud).
        ("13.68.163.40", "azure-storage", Some("eastus")),
        ("2603:1030:213::9", "azure-storage", Some("eastus")),
        // Azure Storage.WestEurope 2603:1020:207::/48.
        ("2603:1020:207::1", "azure-storage", Some("westeurope")),
    ];
    for (addr, service, region) in cases {
        assert_eq!(
            tag_of(table(), addr),
            Some((service.to_owned(), region.map(str::to_owned))),
            "{addr}"
        );
    }
}

#[test]
fn addresses_in_no_published_range_are_not_tagged() {
    for addr in [
        "203.0.113.10",
        "10.1.2.3",
        "192.168.0.1",
        "::1",
        "2001:db8::1",
    ] {
        assert_eq!(tag_of(table(), addr), None, "{addr}");
    }
}

#[test]
fn a_named_service_beats_ec2_and_the_amazon_superset_on_the_same_prefix() {
    // 3.5.140.0/22 is listed three times: AMAZON, EC2 and S3, all ap-northeast-2.
    assert_eq!(
        tag_of(table(), "3.5.140.1"),
        Some(("aws-s3".into(), Some("ap-northeast-2".into())))
    );
    // 52.216.0.0/15 is AMAZON and S3 in us-east-1.
    assert_eq!(
        tag_of(table(), "52.217.255.255"),
        Some(("aws-s3".into(), Some("us-east-1".into())))
    );
}

#[test]
fn azure_service_tags_beat_azurecloud_and_regional_tags_beat_global_ones() {
    // 13.68.163.32/28 is in Storage.EastUS (eastus), in the regionless Storage tag and in
    // AzureCloud.eastus and AzureCloud: the regional Storage tag wins.
    assert_eq!(
        tag_of(table(), "13.68.163.33"),
        Some(("azure-storage".into(), Some("eastus".into())))
    );
    // 4.175.0.0/16 is AzureCloud.westeurope; nothing narrower covers 4.175.0.1 except, as
    // the files say, the same AzureCloud prefix.
    assert_eq!(
        tag_of(table(), "4.175.0.1").map(|t| t.1),
        Some(Some("westeurope".into()))
    );
    // AzureAD and AzureIdentity publish the same 94 prefixes, e.g. 13.66.141.64/27; the tie goes
    // to the first name alphabetically, whatever the file order.
    assert_eq!(
        tag_of(table(), "13.66.141.70"),
        Some(("azure-ad".into(), None))
    );
}

#[test]
fn the_region_of_the_range_decides_the_class_seen_from_the_node() {
    let ranges: Arc<CloudRanges> = Arc::new(CloudRanges::build(files()));
    let c = Classifier::new(ClassificationConfig::kubecost_default()).with_provider_ranges(ranges);
    let t = Topology::default();
    let class = |local: &Locality, addr: &str| c.classify(&t, local, ip(addr));
    let tagged = |class, service: &str| Classification::new(class, Some(service.into()));
    // Cross-region verdicts carry the range's region: with the node's, it picks the pair's price.
    let far = |service: &str, remote_region: &str| Classification {
        remote_region: Some(remote_region.into()),
        ..tagged(TrafficClass::CrossRegion, service)
    };
    let virginia = region("us-east-1");
    // S3 in the node's region: AWS does not bill EC2<->S3 within a region.
    assert_eq!(
        class(&virginia, "54.231.10.20"),
        tagged(TrafficClass::InZone, "aws-s3")
    );
    // S3 in Ireland from Virginia: inter-region transfer.
    assert_eq!(
        class(&virginia, "2a05:d034:8000::1"),
        far("aws-s3", "eu-west-1")
    );
    // 3.5.140.0/22 is also EC2, but the S3 tag and its region (ap-northeast-2) win.
    assert_eq!(
        class(&virginia, "3.5.140.1"),
        far("aws-s3", "ap-northeast-2")
    );
    // A global range (CloudFront): no region to compare, so internet.
    assert_eq!(
        class(&virginia, "205.251.249.1"),
        tagged(TrafficClass::Internet, "aws-cloudfront")
    );
    // A node on Google Cloud reaches AWS S3 over the internet, whatever the region names.
    assert_eq!(
        class(&region("us-central1"), "54.231.10.20"),
        tagged(TrafficClass::Internet, "aws-s3")
    );
    // ... and Google ranges in its own region as cross-zone, in another region as cross-region.
    assert_eq!(
        class(&region("us-central1"), "8.34.210.99"),
        tagged(TrafficClass::CrossZone, "gcp-cloud")
    );
    assert_eq!(
        class(&region("africa-south1"), "8.34.210.99"),
        far("gcp-cloud", "us-central1")
    );
    // A node without a region label cannot compare: internet, still tagged.
    assert_eq!(
        class(&Locality::default(), "54.231.10.20"),
        tagged(TrafficClass::Internet, "aws-s3")
    );
}

#[test]
fn an_ec2_address_in_the_nodes_region_is_cross_zone() {
    // 3.218.180.0/22 is DYNAMODB; find an EC2-only address in us-east-1 instead: 18.208.0.0/13 is
    // EC2 and AMAZON in us-east-1 in the July 2025 file.
    assert_eq!(
        tag_of(table(), "18.208.0.1"),
        Some(("aws-ec2".into(), Some("us-east-1".into())))
    );
    let c = Classifier::new(ClassificationConfig::kubecost_default())
        .with_provider_ranges(Arc::new(CloudRanges::build(files())));
    assert_eq!(
        c.classify(&Topology::default(), &region("us-east-1"), ip("18.208.0.1"))
            .class,
        TrafficClass::CrossZone
    );
}

/// The table of the providers whose `services` switch is on, as the agent builds it.
fn enabled(config: &ClassificationConfig) -> CloudRanges {
    CloudRanges::build(
        files()
            .iter()
            .filter(|d| config.provider_enabled(d.provider)),
    )
}

#[test]
fn the_services_switches_turn_each_provider_off() {
    let config = yaml_config(
        "services:\n  amazon-web-services: false\n  google-cloud-services: true\n  azure-cloud-services: true\n",
    );
    let ranges = enabled(&config);
    assert_eq!(tag_of(&ranges, "54.231.10.20"), None);
    assert_eq!(
        tag_of(&ranges, "8.34.210.99").map(|t| t.0),
        Some("gcp-cloud".into())
    );
    let c = Classifier::new(config).with_provider_ranges(Arc::new(ranges));
    assert_eq!(
        c.classify(
            &Topology::default(),
            &region("us-east-1"),
            ip("54.231.10.20")
        ),
        Classification::new(TrafficClass::Internet, None)
    );
    let all_off = yaml_config("services: {}\n");
    assert_eq!(enabled(&all_off).prefixes(), 0);
}

#[test]
fn a_user_service_wins_over_the_providers_tag_but_keeps_its_region_class() {
    let config = yaml_config(
        "services:\n  amazon-web-services: true\n  services:\n    - service: team-bucket\n      ips: [\"54.231.10.0/24\"]\n",
    );
    let ranges = Arc::new(enabled(&config));
    let c = Classifier::new(config).with_provider_ranges(ranges);
    let t = Topology::default();
    assert_eq!(
        c.classify(&t, &region("us-east-1"), ip("54.231.10.20")),
        Classification::new(TrafficClass::InZone, Some("team-bucket".into()))
    );
    // Outside the user's /24 the provider's tag is back.
    assert_eq!(
        c.classify(&t, &region("us-east-1"), ip("54.231.11.1"))
            .service
            .as_deref(),
        Some("aws-s3")
    );
}

#[test]
fn a_truncated_file_is_rejected_naming_the_file_and_the_reason() {
    let bytes = read("aws-ip-ranges.json");
    let err = aws(&bytes[..bytes.len() / 2], "ranges/aws.json").err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(matches!(err, Some(CloudError::Format { .. })), "{err:?}");
    assert!(
        text.starts_with("ranges/aws.json: not a aws ranges file: EOF while parsing"),
        "{text}"
    );
}

#[test]
fn malformed_files_are_rejected_naming_the_field() {
    let bad_prefix = br#"{"syncToken":"1","createDate":"2025-07-24-20-23-14","prefixes":[
        {"ip_prefix":"3.5.140.0/22","region":"x","service":"S3","network_border_group":"x"},
        {"ip_prefix":"3.5.999.0/22","region":"x","service":"S3","network_border_group":"x"}],
        "ipv6_prefixes":[]}"#;
    assert_eq!(
        aws(bad_prefix, "a.json").map_err(|e| e.to_string()).err(),
        Some(
            "a.json: prefixes[1].ip_prefix: \"3.5.999.0/22\" is not a CIDR prefix: invalid IP \
             address syntax"
                .into()
        )
    );
    let empty =
        br#"{"syncToken":"1","createDate":"2025-07-24-20-23-14","prefixes":[],"ipv6_prefixes":[]}"#;
    assert!(matches!(
        aws(empty, "a.json"),
        Err(CloudError::Empty { .. })
    ));
    // Another provider's file is not silently read as empty: AWS entries have no `scope`.
    let err = gcp(&read("aws-ip-ranges.json"), "g.json").map_err(|e| e.to_string());
    assert_eq!(
        err.err(),
        Some("g.json: not a gcp ranges file: missing field `scope` at line 10 column 5".into())
    );
    let err = azure(br#"{"values":[{"name":"Storage","properties":{"region":"","systemService":"AzureStorage","addressPrefixes":["nope"]}}]}"#, "z.json");
    assert_eq!(
        err.map_err(|e| e.to_string()).err(),
        Some("z.json: values[0].properties.addressPrefixes[0]: \"nope\" is not a CIDR prefix: invalid IP address syntax".into())
    );
}

#[test]
fn builtin_table_is_exactly_what_the_generator_makes_from_the_july_2025_files() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/cloud-ranges.bin");
    let committed = std::fs::read(&committed).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        encode(files()) == committed,
        "crates/core/data/cloud-ranges.bin is stale: run \
         `cargo run -p netcost-core --example gen_cloud_ranges`"
    );
}

#[test]
fn builtin_table_classifies_every_published_prefix_like_the_files_do() {
    let from_builtin = CloudRanges::build(&builtin().unwrap_or_else(|e| panic!("{e}")));
    let from_files = table();
    let mut checked = 0;
    for data in files() {
        for e in &data.entries {
            for addr in [e.net.network(), e.net.broadcast()] {
                assert_eq!(
                    from_builtin.lookup(addr),
                    from_files.lookup(addr),
                    "{addr} ({})",
                    e.net
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 104_619);
}

#[test]
fn a_damaged_builtin_encoding_is_an_error_not_a_panic() {
    let good = encode(files());
    for cut in [0, 3, 5, 100, good.len() / 2, good.len() - 1] {
        assert!(
            matches!(decode(&good[..cut]), Err(CloudError::Builtin { .. })),
            "cut at {cut}"
        );
    }
}

#[test]
fn the_whole_table_fits_in_eight_mebibytes() {
    let bytes = table().memory_bytes();
    assert!(bytes <= 8 << 20, "{bytes} bytes");
}
