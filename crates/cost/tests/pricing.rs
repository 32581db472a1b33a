//! Prices and allocations checked against figures computed by hand from the price sheets.

use std::path::Path;

use netcost_core::class::{Direction, TrafficClass};
use netcost_cost::allocate::{
    Aggregate, PodIdentity, SegmentUsage, Usage, allocate, remote_has_agent,
};
use netcost_cost::edges::{PairUsage, Workload, cross_zone_edges};
use netcost_cost::pricing::{PriceSheet, PricingError, Unit, is_provider_range};

/// A billing GB: every built-in sheet, AWS's and Azure's included, counts 2^30 bytes in one
/// (docs/pricing.md, "GB or GiB").
const GB: u64 = 1 << 30;
const GIB: u64 = 1 << 30;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

fn pod(namespace: &str, name: &str, region: &str) -> PodIdentity {
    PodIdentity {
        namespace: namespace.into(),
        pod: name.into(),
        node: Some("node-a".into()),
        region: Some(region.into()),
        workload: Some(("Deployment".into(), name.trim_end_matches("-0").into())),
        ..PodIdentity::default()
    }
}

fn usage(pod: &PodIdentity, direction: Direction, class: TrafficClass, bytes: u64) -> Usage {
    Usage {
        pod: pod.clone(),
        direction,
        class,
        service: None,
        remote_region: None,
        remote_has_agent: true,
        nat_gateway: false,
        bytes,
    }
}

#[test]
fn aws_internet_tiers_are_crossed_within_a_month() {
    let aws = PriceSheet::aws();
    // 9,000 GB already this month, 2,000 GB more: 1,240 GB at $0.09 up to the 10,240 GB
    // bound, then 760 GB at $0.085.
    let expected = 1_240.0 * 0.09 + 760.0 * 0.085;
    assert!(close(aws.internet_egress_cost(9_000.0, 11_000.0), expected));
}

#[test]
fn the_monthly_free_allowance_is_the_bottom_of_the_first_tier() {
    let aws = PriceSheet::aws();
    assert!(close(aws.internet_egress_cost(0.0, 150.0), 50.0 * 0.09));
    assert!(close(aws.internet_egress_cost(0.0, 80.0), 0.0));
    assert!(close(
        aws.internet_egress_cost(80.0, 10_240.0),
        10_140.0 * 0.09
    ));
}

#[test]
fn gcp_premium_tiers_are_per_gib_after_a_free_first_gib() {
    let gcp = PriceSheet::gcp();
    assert_eq!(gcp.unit, Unit::Gib);
    // The first GiB of the month is free, inside the first tier (0 to 1 TiB at $0.12).
    let expected = 1_023.0 * 0.12 + (10_240.0 - 1_024.0) * 0.11 + 1_000.0 * 0.08;
    assert!(close(gcp.internet_egress_cost(0.0, 1.0), 0.0));
    assert!(close(gcp.internet_egress_cost(0.0, 2.0), 0.12));
    assert!(close(gcp.internet_egress_cost(0.0, 11_240.0), expected));
    assert!(close(Unit::Gib.of_bytes(GIB), 1.0));
    assert!(close(Unit::Gb.of_bytes(GIB), 1.073_741_824));
}

#[test]
fn aws_bills_cross_zone_on_both_sides_and_gcp_only_the_sender() {
    let (a, b) = (
        pod("shop", "web-0", "us-east-1"),
        pod("shop", "db-0", "us-east-1"),
    );
    // One flow, 5 GB from web to db in another zone: web's egress and db's ingress.
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages: vec![
            usage(&a, Direction::Egress, TrafficClass::CrossZone, 5 * GB),
            usage(&b, Direction::Ingress, TrafficClass::CrossZone, 5 * GB),
        ],
        ..SegmentUsage::default()
    };
    let (_, aws) = allocate(
        std::slice::from_ref(&segment),
        &PriceSheet::aws(),
        &Aggregate::Pod,
        3_600,
    );
    assert!(close(aws.total_cost, 5.0 * 0.01 * 2.0));
    let (_, gcp) = allocate(
        std::slice::from_ref(&segment),
        &PriceSheet::gcp(),
        &Aggregate::Pod,
        3_600,
    );
    assert!(close(gcp.total_cost, 5.0 * 0.01));
    let (_, azure) = allocate(&[segment], &PriceSheet::azure(), &Aggregate::Pod, 3_600);
    assert!(
        close(azure.total_cost, 0.0),
        "Azure inter-AZ transfer is free since May 2024"
    );
}

#[test]
fn cross_region_egress_is_priced_by_the_source_region_and_ingress_is_free() {
    let sheet = PriceSheet::from_yaml_str(
        "provider: aws\ncross_region:\n  by_source_region: {ap-southeast-2: 0.098}\n",
        Path::new("pricing.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sydney = pod("batch", "etl-0", "ap-southeast-2");
    let virginia = pod("batch", "sink-0", "us-east-1");
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages: vec![
            usage(
                &sydney,
                Direction::Egress,
                TrafficClass::CrossRegion,
                10 * GB,
            ),
            usage(
                &virginia,
                Direction::Ingress,
                TrafficClass::CrossRegion,
                10 * GB,
            ),
            usage(
                &virginia,
                Direction::Egress,
                TrafficClass::CrossRegion,
                3 * GB,
            ),
        ],
        ..SegmentUsage::default()
    };
    let (rows, total) = allocate(&[segment], &sheet, &Aggregate::Pod, 3_600);
    assert!(close(total.total_cost, 10.0 * 0.098 + 3.0 * 0.02));
    let sink = rows
        .iter()
        .find(|r| r.name == "batch/sink-0")
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(close(sink.total_cost, 3.0 * 0.02));
}

#[test]
fn internet_egress_cost_is_shared_by_bytes_after_the_cluster_crosses_a_tier() {
    let (a, b) = (
        pod("shop", "web-0", "us-east-1"),
        pod("media", "cdn-0", "us-east-1"),
    );
    let segment = SegmentUsage {
        internet_egress_before: 10_000 * GB,
        usages: vec![
            usage(&a, Direction::Egress, TrafficClass::Internet, 300 * GB),
            usage(&b, Direction::Egress, TrafficClass::Internet, 700 * GB),
            usage(&b, Direction::Ingress, TrafficClass::Internet, 900 * GB),
        ],
        ..SegmentUsage::default()
    };
    let (rows, total) = allocate(
        &[segment],
        &PriceSheet::aws(),
        &Aggregate::Namespace,
        86_400,
    );
    let cluster = 240.0 * 0.09 + 760.0 * 0.085;
    assert!(
        close(total.total_cost, cluster),
        "ingress from the internet is free"
    );
    let media = rows
        .iter()
        .find(|r| r.name == "media")
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(close(media.total_cost, cluster * 0.7));
    assert!(close(media.share, 0.7));
    assert!(close(media.monthly_rate, cluster * 0.7 * 730.0 / 24.0));
    assert_eq!(media.internet.egress_bytes, 700 * GB);
    assert_eq!(media.internet.ingress_bytes, 900 * GB);
    assert_eq!(rows[0].name, "media", "rows are sorted by cost");
}

#[test]
fn a_new_month_starts_the_tiers_again() {
    let a = pod("shop", "web-0", "us-east-1");
    let late_november = SegmentUsage {
        internet_egress_before: 200_000 * GB,
        usages: vec![usage(
            &a,
            Direction::Egress,
            TrafficClass::Internet,
            100 * GB,
        )],
        ..SegmentUsage::default()
    };
    let early_december = SegmentUsage {
        internet_egress_before: 0,
        usages: vec![usage(
            &a,
            Direction::Egress,
            TrafficClass::Internet,
            100 * GB,
        )],
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(
        &[late_november, early_december],
        &PriceSheet::aws(),
        &Aggregate::Namespace,
        86_400,
    );
    assert!(
        close(total.total_cost, 100.0 * 0.05 + 0.0),
        "December's first 100 GB are free"
    );
}

#[test]
fn the_nat_gateway_charge_applies_to_the_bytes_marked_as_through_it_both_ways() {
    let aws = PriceSheet::aws();
    assert_eq!(aws.nat_gateway, Some(PriceSheet::AWS_NAT_GATEWAY_PER_GB));
    let a = pod("shop", "web-0", "us-east-1");
    let natted = |direction, class, bytes| Usage {
        nat_gateway: true,
        ..usage(&a, direction, class, bytes)
    };
    let segment = SegmentUsage {
        internet_egress_before: 1_000 * GB,
        usages: vec![
            // Through the gateway: 10 GB out, 20 GB in, and 5 GB to S3 in the region (free
            // transfer, but the gateway still processes it).
            natted(Direction::Egress, TrafficClass::Internet, 10 * GB),
            natted(Direction::Ingress, TrafficClass::Internet, 20 * GB),
            Usage {
                service: Some("aws-s3".into()),
                remote_has_agent: false,
                ..natted(Direction::Ingress, TrafficClass::InZone, 5 * GB)
            },
            // Not through it: 7 GB out.
            usage(&a, Direction::Egress, TrafficClass::Internet, 7 * GB),
        ],
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[segment], &aws, &Aggregate::Pod, 3_600);
    // Transfer: 17 GB out at $0.09; the gateway: 35 GB at $0.045.
    assert!(close(total.total_cost, 17.0 * 0.09 + 35.0 * 0.045));
    assert_eq!(total.nat_gateway.egress_bytes, 10 * GB);
    assert_eq!(total.nat_gateway.ingress_bytes, 25 * GB);
    assert!(close(total.nat_gateway.cost, 35.0 * 0.045));
    // The classes hold their share of it: internet 30 GB, in-zone 5 GB.
    assert!(close(total.in_zone.cost, 5.0 * 0.045));
    // A sheet without a NAT price charges nothing for the same bytes.
    let mut free = PriceSheet::aws();
    free.nat_gateway = None;
    let segment = SegmentUsage {
        internet_egress_before: 1_000 * GB,
        usages: vec![natted(Direction::Ingress, TrafficClass::Internet, 20 * GB)],
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[segment], &free, &Aggregate::Pod, 3_600);
    assert!(close(total.total_cost, 0.0));
}

#[test]
fn the_opencost_preset_prices_egress_per_gib() {
    let a = pod("shop", "web-0", "us-east-1");
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages: vec![
            usage(&a, Direction::Egress, TrafficClass::CrossZone, 2 * GIB),
            usage(&a, Direction::Egress, TrafficClass::CrossRegion, 3 * GIB),
            usage(&a, Direction::Egress, TrafficClass::Internet, 4 * GIB),
            usage(&a, Direction::Ingress, TrafficClass::CrossZone, 50 * GIB),
        ],
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[segment], &PriceSheet::opencost(), &Aggregate::Pod, 3_600);
    assert!(close(
        total.total_cost,
        2.0 * 0.01 + 3.0 * 0.01 + 4.0 * 0.12
    ));
}

#[test]
fn aggregation_by_workload_and_label_groups_pods() {
    let mut a = pod("shop", "web-0", "us-east-1");
    a.labels.insert("team".into(), "checkout".into());
    let mut b = a.clone();
    b.pod = "web-1".into();
    let c = pod("shop", "db-0", "us-east-1");
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages: [&a, &b, &c]
            .iter()
            .map(|p| usage(p, Direction::Egress, TrafficClass::CrossZone, GB))
            .collect(),
        ..SegmentUsage::default()
    };
    let (by_workload, _) = allocate(
        std::slice::from_ref(&segment),
        &PriceSheet::aws(),
        &Aggregate::Workload,
        3_600,
    );
    let names: Vec<&str> = by_workload.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["shop/Deployment/web", "shop/Deployment/db"]);
    let (by_team, _) = allocate(
        &[segment],
        &PriceSheet::aws(),
        &Aggregate::Label("team".into()),
        3_600,
    );
    let team = by_team
        .iter()
        .find(|r| r.name == "team=checkout")
        .unwrap_or_else(|| panic!("{by_team:?}"));
    assert!(close(team.total_cost, 2.0 * 0.01));
    assert!(by_team.iter().any(|r| r.name == "__unallocated__"));
}

fn refused(text: &str) -> String {
    match PriceSheet::from_yaml_str(text, Path::new("pricing.yaml")) {
        Ok(sheet) => panic!("accepted {text:?} as {sheet:?}"),
        Err(e @ PricingError::Parse { .. } | e @ PricingError::Invalid { .. }) => e.to_string(),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[test]
fn bad_pricing_files_name_the_file_the_field_and_the_reason() {
    let e = refused("provider: oracle\n");
    assert!(
        e.contains("pricing.yaml") && e.contains("provider") && e.contains("oracle"),
        "{e}"
    );
    let e = refused("provider: aws\ncross_zone: {egress: -1}\n");
    assert!(
        e.contains("cross_zone.egress") && e.contains("at least 0"),
        "{e}"
    );
    let e = refused(
        "provider: aws\ninternet_egress:\n  tiers: [{up_to: 100, price: 0.1}, {up_to: 50, price: 0.05}, {price: 0.01}]\n",
    );
    assert!(e.contains("internet_egress.tiers[1].up_to"), "{e}");
    let e = refused("provider: aws\ninternet_egress:\n  tiers: [{up_to: 100, price: 0.1}]\n");
    assert!(
        e.contains("internet_egress.tiers[0].up_to") && e.contains("last tier"),
        "{e}"
    );
    // An unknown key is reported with its path, once, like the config's and inventory's.
    let e = refused("provider: aws\ncross_zone:\n  egress: 0.01\n  egres: 0.02\n");
    assert!(
        e.starts_with(
            "pricing.yaml: cross_zone.egres: unknown field `egres`, expected `egress` or `ingress`"
        ),
        "{e}"
    );
    let e = refused(
        "provider: aws\ncross_region:\n  pairs: [{from: us-east-1, to: us-east-2, prize: 0.01}]\n",
    );
    assert!(
        e.starts_with("pricing.yaml: cross_region.pairs[0].prize: unknown field `prize`"),
        "{e}"
    );
    let e = refused("provider: aws\nunit: MB\n");
    assert!(
        e.starts_with("pricing.yaml: unit: ") && e.contains("MB"),
        "{e}"
    );
    let e = refused("provider: aws\ncross_zone: {egress: 0.01\n");
    assert!(
        e.starts_with("pricing.yaml: (document): not valid YAML: line "),
        "{e}"
    );
    assert!(!e.contains("<input>") && !e.contains("error:"), "{e}");
    let e = refused("");
    assert!(
        e.starts_with("pricing.yaml: (document): the pricing file is empty"),
        "{e}"
    );
}

#[test]
fn a_pricing_file_overrides_only_what_it_names() {
    let sheet = PriceSheet::from_yaml_str(
        "provider: gcp\nunit: GB\ncross_zone: {ingress: 0.01}\n",
        Path::new("pricing.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sheet.unit, Unit::Gb);
    assert!(close(sheet.cross_zone_ingress, 0.01));
    assert!(close(
        sheet.cross_zone_egress,
        PriceSheet::gcp().cross_zone_egress
    ));
    assert!(sheet.source.contains("pricing.yaml"));
}

fn to_region(mut usage: Usage, remote_region: &str) -> Usage {
    usage.remote_region = Some(remote_region.into());
    usage
}

#[test]
fn aws_prices_us_east_1_to_us_east_2_at_the_pairs_price_not_the_source_regions() {
    // aws.amazon.com/ec2/pricing/on-demand, "Data Transfer to other AWS regions" out of US East
    // (N. Virginia): $0.01/GB to US East (Ohio), $0.02/GB to the other US regions; and $0.01/GB
    // out of Ohio back to N. Virginia. Inbound is free.
    let virginia = pod("shop", "web-0", "us-east-1");
    let ohio = pod("shop", "db-0", "us-east-2");
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages: vec![
            to_region(
                usage(
                    &virginia,
                    Direction::Egress,
                    TrafficClass::CrossRegion,
                    10 * GB,
                ),
                "us-east-2",
            ),
            to_region(
                usage(
                    &ohio,
                    Direction::Ingress,
                    TrafficClass::CrossRegion,
                    10 * GB,
                ),
                "us-east-1",
            ),
            to_region(
                usage(&ohio, Direction::Egress, TrafficClass::CrossRegion, 30 * GB),
                "us-east-1",
            ),
            to_region(
                usage(
                    &virginia,
                    Direction::Egress,
                    TrafficClass::CrossRegion,
                    5 * GB,
                ),
                "us-west-2",
            ),
            // The counters do not say where these went: the source region's price.
            usage(
                &virginia,
                Direction::Egress,
                TrafficClass::CrossRegion,
                2 * GB,
            ),
        ],
        ..SegmentUsage::default()
    };
    let (rows, total) = allocate(&[segment], &PriceSheet::aws(), &Aggregate::Pod, 3_600);
    // 10 GB × $0.01 + 30 GB × $0.01 + 5 GB × $0.02 + 2 GB × $0.02 = $0.10 + $0.30 + $0.10 +
    // $0.04 = $0.54; the 10 GB received in Ohio cost nothing more.
    assert!(close(total.total_cost, 0.54), "{}", total.total_cost);
    let db = rows.iter().find(|r| r.name == "shop/db-0");
    assert!(close(db.map_or(-1.0, |r| r.total_cost), 0.30), "{rows:?}");
}

fn pair(
    client: (&str, &str, &str),
    server: (&str, &str, &str),
    counted_in: &str,
    class: TrafficClass,
    bytes: u64,
) -> PairUsage {
    let workload = |name: &str| Workload {
        namespace: "shop".into(),
        kind: "Deployment".into(),
        name: name.into(),
    };
    PairUsage {
        client: workload(client.0),
        client_zone: client.1.into(),
        server: workload(server.0),
        server_zone: server.1.into(),
        class,
        bytes,
        client_region: Some(client.2.into()),
        server_region: Some(server.2.into()),
        counted_in_region: Some(counted_in.into()),
    }
}

#[test]
fn edges_price_each_byte_from_its_senders_region_to_its_receivers() {
    // web (us-east-1a) calls db (us-east-2a): web's agent counts the 10 GB web sent, db's agent
    // the 30 GB db sent back.
    let web = ("web", "us-east-1a", "us-east-1");
    let db = ("db", "us-east-2a", "us-east-2");
    let usages = [
        pair(web, db, "us-east-1", TrafficClass::CrossRegion, 10 * GB),
        pair(web, db, "us-east-2", TrafficClass::CrossRegion, 30 * GB),
    ];
    let edges = cross_zone_edges(&usages, &PriceSheet::aws(), 3_600);
    // Both directions are $0.01/GB between N. Virginia and Ohio: 40 GB × $0.01 = $0.40 (the
    // default $0.02 would say $0.80).
    assert_eq!(edges.len(), 1);
    assert!(close(edges[0].cost, 0.40), "{}", edges[0].cost);

    // A source-region price applies to what that region sends, whichever end opened the flow.
    let sheet = PriceSheet::from_yaml_str(
        "provider: aws\ncross_region:\n  by_source_region: {ap-southeast-2: 0.098}\n",
        Path::new("pricing.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let etl = ("etl", "ap-southeast-2a", "ap-southeast-2");
    let sink = ("sink", "us-east-1a", "us-east-1");
    let usages = [
        pair(
            etl,
            sink,
            "ap-southeast-2",
            TrafficClass::CrossRegion,
            10 * GB,
        ),
        pair(etl, sink, "us-east-1", TrafficClass::CrossRegion, 30 * GB),
    ];
    let edges = cross_zone_edges(&usages, &sheet, 3_600);
    // 10 GB out of Sydney × $0.098 + 30 GB out of N. Virginia × $0.02 = $0.98 + $0.60 = $1.58.
    assert!(close(edges[0].cost, 1.58), "{}", edges[0].cost);
}

/// A counter of a remote end tagged with `service`: an end outside the cluster.
fn tagged(mut usage: Usage, service: &str) -> Usage {
    usage.service = Some(service.into());
    usage.remote_has_agent = remote_has_agent(Some(service));
    usage
}

#[test]
fn same_region_traffic_to_the_aws_services_ec2_pricing_lists_is_free() {
    // aws.amazon.com/ec2/pricing/on-demand, "Data Transfer within the same AWS Region": data
    // between EC2 and S3, Glacier, DynamoDB, SES, SQS, Kinesis, ECR, SNS or SimpleDB in the same
    // region is free. An address of one of them in the node's region is classed cross-zone (in
    // the region, not known to be in the zone).
    let web = pod("shop", "web-0", "us-east-1");
    let db = pod("shop", "db-0", "us-east-1");
    let mut usages = Vec::new();
    for service in PriceSheet::AWS_FREE_IN_REGION {
        usages.push(tagged(
            usage(&web, Direction::Egress, TrafficClass::CrossZone, 4 * GB),
            service,
        ));
        usages.push(tagged(
            usage(&web, Direction::Ingress, TrafficClass::CrossZone, 6 * GB),
            service,
        ));
    }
    // A pod in another zone is not a service: 1 GB from web to db, both sides billed.
    usages.push(usage(&web, Direction::Egress, TrafficClass::CrossZone, GB));
    usages.push(usage(&db, Direction::Ingress, TrafficClass::CrossZone, GB));
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages,
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[segment], &PriceSheet::aws(), &Aggregate::Pod, 3_600);
    // 9 services × 10 GB × $0 + 1 GB × ($0.01 out + $0.01 in) = $0.02; before, the 90 GB to the
    // services cost 90 × $0.01 = $0.90 more.
    assert!(close(total.total_cost, 0.02), "{}", total.total_cost);
    assert_eq!(total.cross_zone.egress_bytes, 9 * 4 * GB + GB);
    assert!(close(total.services["aws-sqs"].cost, 0.0));

    // The edges view prices an external end named by such a service the same way.
    let mut to_sqs = pair(
        ("web", "us-east-1a", "us-east-1"),
        ("aws-sqs", "", "us-east-1"),
        "us-east-1",
        TrafficClass::CrossZone,
        10 * GB,
    );
    to_sqs.server = Workload {
        namespace: String::new(),
        kind: "External".into(),
        name: "aws-sqs".into(),
    };
    let edges = cross_zone_edges(&[to_sqs], &PriceSheet::aws(), 3_600);
    assert!(close(edges[0].cost, 0.0), "{edges:?}");
}

#[test]
fn a_pricing_file_names_the_services_free_within_a_region() {
    let sheet = PriceSheet::from_yaml_str(
        "provider: gcp\nfree_in_region_services: [gcp-cloud]\n",
        Path::new("pricing.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sheet.free_in_region_services.iter().collect::<Vec<_>>(),
        ["gcp-cloud"]
    );
    let web = pod("shop", "web-0", "us-central1");
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages: vec![tagged(
            usage(&web, Direction::Egress, TrafficClass::CrossZone, 3 * GIB),
            "gcp-cloud",
        )],
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[segment], &sheet, &Aggregate::Pod, 3_600);
    assert!(close(total.total_cost, 0.0));
    assert!(PriceSheet::gcp().free_in_region_services.is_empty());
}

#[test]
fn an_end_outside_the_cluster_is_charged_for_its_side_too() {
    // AWS bills cross-AZ traffic out of the sender's zone and into the receiver's, $0.01/GB
    // each (EC2 on-demand pricing; the CUR guide: two DataTransfer-Regional-Bytes line items per
    // transfer). web (us-east-1a) sends 8 GB to a database in us-east-1b, tagged `orders-db` by
    // the `services` list, and receives 12 GB from it. No agent counts the database's side.
    let web = pod("shop", "web-0", "us-east-1");
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages: vec![
            tagged(
                usage(&web, Direction::Egress, TrafficClass::CrossZone, 8 * GB),
                "orders-db",
            ),
            tagged(
                usage(&web, Direction::Ingress, TrafficClass::CrossZone, 12 * GB),
                "orders-db",
            ),
        ],
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(
        std::slice::from_ref(&segment),
        &PriceSheet::aws(),
        &Aggregate::Pod,
        3_600,
    );
    // (8 GB + 12 GB) × ($0.01 web's side + $0.01 the database's side) = $0.40; counting only
    // web's side gave $0.20, half the bill.
    assert!(close(total.total_cost, 0.40), "{}", total.total_cost);

    // The same bytes between two pods: each pod's agent counts its own side.
    let db = pod("shop", "db-0", "us-east-1");
    let pods = SegmentUsage {
        internet_egress_before: 0,
        usages: vec![
            usage(&web, Direction::Egress, TrafficClass::CrossZone, 8 * GB),
            usage(&db, Direction::Ingress, TrafficClass::CrossZone, 8 * GB),
            usage(&db, Direction::Egress, TrafficClass::CrossZone, 12 * GB),
            usage(&web, Direction::Ingress, TrafficClass::CrossZone, 12 * GB),
        ],
        ..SegmentUsage::default()
    };
    let (_, both) = allocate(&[pods], &PriceSheet::aws(), &Aggregate::Pod, 3_600);
    assert!(close(both.total_cost, 0.40), "{}", both.total_cost);

    // GCP bills the sender only, $0.01/GiB: web's 8 GiB and the database's 12 GiB.
    let gib = SegmentUsage {
        internet_egress_before: 0,
        usages: segment
            .usages
            .iter()
            .map(|u| Usage {
                bytes: u.bytes / GB * GIB,
                ..u.clone()
            })
            .collect(),
        ..SegmentUsage::default()
    };
    let (_, gcp) = allocate(&[gib], &PriceSheet::gcp(), &Aggregate::Pod, 3_600);
    assert!(
        close(gcp.total_cost, 8.0 * 0.01 + 12.0 * 0.01),
        "{}",
        gcp.total_cost
    );
}

#[test]
fn bytes_an_end_outside_the_cluster_sends_across_regions_are_billed_out_of_its_region() {
    // web (us-east-1) sends 5 GB to an object store in us-west-2 and reads 15 GB from it. The
    // store's 15 GB are data transferred out of us-west-2: $0.02/GB out of US regions. Its
    // region is not in the counters, so it is priced like web's own region's egress.
    let web = pod("shop", "web-0", "us-east-1");
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages: vec![
            tagged(
                usage(&web, Direction::Egress, TrafficClass::CrossRegion, 5 * GB),
                "aws-s3",
            ),
            tagged(
                usage(&web, Direction::Ingress, TrafficClass::CrossRegion, 15 * GB),
                "aws-s3",
            ),
        ],
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[segment], &PriceSheet::aws(), &Aggregate::Pod, 3_600);
    // 5 GB × $0.02 + 15 GB × $0.02 = $0.40 (web's egress alone was $0.10).
    assert!(close(total.total_cost, 0.40), "{}", total.total_cost);
}

#[test]
fn a_providers_public_range_in_the_region_is_billed_on_the_pods_side_only() {
    // EC2 on-demand pricing: traffic to public and Elastic IP addresses in the same region is
    // billed at $0.01/GB in each direction on the instance's side. The address's own side is an
    // AWS service's or another account's, not this cluster's. web sends 3 GB to an `AMAZON`
    // range of its region and receives 7 GB from it.
    let web = pod("shop", "web-0", "us-east-1");
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages: vec![
            tagged(
                usage(&web, Direction::Egress, TrafficClass::CrossZone, 3 * GB),
                "aws-amazon",
            ),
            tagged(
                usage(&web, Direction::Ingress, TrafficClass::CrossZone, 7 * GB),
                "aws-amazon",
            ),
        ],
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[segment], &PriceSheet::aws(), &Aggregate::Pod, 3_600);
    // 3 GB × $0.01 + 7 GB × $0.01 = $0.10.
    assert!(close(total.total_cost, 0.10), "{}", total.total_cost);
    // The edges view: the pair holds the 10 GB both ways, at $0.01/GB.
    let mut to_amazon = pair(
        ("web", "us-east-1a", "us-east-1"),
        ("aws-amazon", "", "us-east-1"),
        "us-east-1",
        TrafficClass::CrossZone,
        10 * GB,
    );
    to_amazon.server = Workload {
        namespace: String::new(),
        kind: "External".into(),
        name: "aws-amazon".into(),
    };
    to_amazon.server_region = None;
    let edges = cross_zone_edges(&[to_amazon], &PriceSheet::aws(), 3_600);
    assert!(close(edges[0].cost, 0.10), "{edges:?}");

    assert!(is_provider_range("aws-amazon") && is_provider_range("azure-sql"));
    assert!(is_provider_range("gcp-cloud"));
    assert!(!is_provider_range("orders-db") && !is_provider_range("awsome-db"));
}

#[test]
fn aws_and_azure_bill_per_binary_gb() {
    // 10 × 2^30 bytes across zones on AWS: 10 GB × ($0.01 out + $0.01 in) = $0.20, not the
    // $0.2147 that 10^9-byte GB would make of the same bytes.
    assert_eq!(PriceSheet::aws().unit, Unit::Gib);
    assert_eq!(PriceSheet::azure().unit, Unit::Gib);
    let (a, b) = (
        pod("shop", "web-0", "us-east-1"),
        pod("shop", "db-0", "us-east-1"),
    );
    let segment = SegmentUsage {
        usages: vec![
            usage(&a, Direction::Egress, TrafficClass::CrossZone, 10 << 30),
            usage(&b, Direction::Ingress, TrafficClass::CrossZone, 10 << 30),
        ],
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[segment], &PriceSheet::aws(), &Aggregate::Pod, 3_600);
    assert!(close(total.total_cost, 0.20), "{}", total.total_cost);
    // A pricing file can still read the sheet's GB as 10^9 bytes.
    let decimal = PriceSheet::from_yaml_str("provider: aws\nunit: GB\n", Path::new("p.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(close(decimal.unit.of_bytes(10 << 30), 10.737_418_24));
}

#[test]
fn azure_bands_start_at_the_retail_price_lists_minimums() {
    let azure = PriceSheet::azure();
    // 10,000 to 10,400 GB in a month: 335 GB at $0.087 up to 10,335, then 65 GB at $0.083.
    assert!(close(
        azure.internet_egress_cost(10_000.0, 10_400.0),
        335.0 * 0.087 + 65.0 * 0.083
    ));
    // Across the next two bounds, 51,295 and 153,695.
    assert!(close(
        azure.internet_egress_cost(51_000.0, 51_300.0),
        295.0 * 0.083 + 5.0 * 0.07
    ));
    assert!(close(
        azure.internet_egress_cost(153_600.0, 153_700.0),
        95.0 * 0.07 + 5.0 * 0.05
    ));
    // The first 100 GB are free.
    assert!(close(azure.internet_egress_cost(0.0, 100.0), 0.0));
}

fn ts(text: &str) -> jiff::Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn november(start: &str, end: &str) -> netcost_cost::window::Segment {
    netcost_cost::window::Segment {
        month_start: ts("2026-11-01T00:00:00Z"),
        start: ts(start),
        end: ts(end),
    }
}

#[test]
fn the_rest_of_the_accounts_internet_egress_moves_the_cluster_up_the_tiers() {
    let sheet = PriceSheet::from_yaml_str(
        "provider: aws\ninternet_egress:\n  account_other_per_month: 9000\n",
        Path::new("p.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let a = pod("shop", "web-0", "us-east-1");
    // The whole of November (30 days): the rest of the account sends 9,000 GB, the cluster
    // 2,000. The account's 11,000 GB cost (10,240 - 100) × $0.09 + 760 × $0.085 = $977.20,
    // of which the cluster's 2,000 pay 2/11: $177.6727. Alone it would have paid
    // (2,000 - 100) × $0.09 = $171.
    let month = SegmentUsage {
        usages: vec![usage(
            &a,
            Direction::Egress,
            TrafficClass::Internet,
            2_000 * GB,
        )],
        segment: Some(november("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")),
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[month], &sheet, &Aggregate::Pod, 30 * 86_400);
    let expected = (10_140.0 * 0.09 + 760.0 * 0.085) * 2.0 / 11.0;
    assert!(close(total.total_cost, expected), "{}", total.total_cost);

    // Five days from the 16th: 15 days of the rest (4,500 GB) and 4,000 GB of the cluster's
    // are before it; during it, 1,500 GB of the rest's and 500 of the cluster's. 8,500 to
    // 10,500 GB: 1,740 × $0.09 + 260 × $0.085 = $178.70, and the cluster's quarter $44.675.
    let five_days = SegmentUsage {
        internet_egress_before: 4_000 * GB,
        usages: vec![usage(
            &a,
            Direction::Egress,
            TrafficClass::Internet,
            500 * GB,
        )],
        segment: Some(november("2026-11-16T00:00:00Z", "2026-11-21T00:00:00Z")),
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[five_days], &sheet, &Aggregate::Pod, 5 * 86_400);
    assert!(close(total.total_cost, 44.675), "{}", total.total_cost);

    let refused = PriceSheet::from_yaml_str(
        "provider: aws\ninternet_egress:\n  account_other_per_month: -1\n",
        Path::new("p.yaml"),
    )
    .map(|_| ())
    .map_err(|e| e.to_string());
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e
                .starts_with("p.yaml: internet_egress.account_other_per_month: a monthly volume")),
        "{refused:?}"
    );
}

#[test]
fn a_filtered_part_of_the_cluster_pays_the_tier_of_the_whole_clusters_volume() {
    // 10,000 GB before; the whole cluster sends 1,000 GB in the segment, of which the filtered
    // namespace's pod sent 700: it pays 70% of (240 × $0.09 + 760 × $0.085), not the price of
    // 700 GB alone (240 × $0.09 + 460 × $0.085).
    let b = pod("media", "cdn-0", "us-east-1");
    let segment = SegmentUsage {
        internet_egress_before: 10_000 * GB,
        usages: vec![usage(
            &b,
            Direction::Egress,
            TrafficClass::Internet,
            700 * GB,
        )],
        cluster_internet_egress: Some(1_000 * GB),
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[segment], &PriceSheet::aws(), &Aggregate::Pod, 3_600);
    assert!(close(
        total.total_cost,
        0.7 * (240.0 * 0.09 + 760.0 * 0.085)
    ));
}

#[test]
fn an_interface_endpoint_bills_processing_on_in_zone_bytes_and_kinds_are_checked() {
    let sheet = PriceSheet::from_yaml_str(
        "provider: aws\nservice_kinds: {sqs-endpoint: interface-endpoint}\n",
        Path::new("p.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let a = pod("shop", "web-0", "us-east-1");
    let tagged = |direction, bytes| Usage {
        service: Some("sqs-endpoint".into()),
        remote_has_agent: remote_has_agent(Some("sqs-endpoint")),
        nat_gateway: false,
        ..usage(&a, direction, TrafficClass::InZone, bytes)
    };
    // 3 GB out and 2 GB in through the endpoint in the pod's own zone: 5 GB × $0.01.
    let segment = SegmentUsage {
        usages: vec![
            tagged(Direction::Egress, 3 * GB),
            tagged(Direction::Ingress, 2 * GB),
        ],
        ..SegmentUsage::default()
    };
    let (_, total) = allocate(&[segment], &sheet, &Aggregate::Pod, 3_600);
    assert!(close(total.total_cost, 0.05), "{}", total.total_cost);

    for (text, field) in [
        (
            "provider: aws\nservice_kinds: {web: load-balancer}\n",
            "pricing.yaml: service_kinds.web: unknown variant `load-balancer`",
        ),
        (
            "provider: aws\nservice_kinds: {aws-s3: gateway-endpoint}\n",
            "pricing.yaml: service_kinds.aws-s3: names a cloud provider's range",
        ),
        (
            "provider: aws\ninterface_endpoint_processing: -0.01\n",
            "pricing.yaml: interface_endpoint_processing: a price must be",
        ),
    ] {
        let e = refused(text);
        assert!(e.starts_with(field), "{e}");
    }
}
