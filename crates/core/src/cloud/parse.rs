//! Readers of the three published formats, from bytes. Every prefix is checked; one bad prefix
//! rejects the whole file, because a half-read file would silently untag traffic.
//!
//! Formats, as documented by each provider:
//! - AWS `ip-ranges.json`: `{syncToken, createDate: "YYYY-MM-DD-hh-mm-ss" (UTC), prefixes:
//!   [{ip_prefix, region, service, network_border_group}], ipv6_prefixes: [{ipv6_prefix, ...}]}`;
//!   `region` is `GLOBAL` for ranges used from many regions. Source: "Syntax for AWS IP address
//!   range JSON", <https://docs.aws.amazon.com/vpc/latest/userguide/aws-ip-syntax.html>.
//! - Google Cloud `cloud.json`: `{syncToken, creationTime: "YYYY-MM-DDThh:mm:ss.ffffff", prefixes:
//!   [{ipv4Prefix | ipv6Prefix, service: "Google Cloud", scope: <region> | "global"}]}`. Source:
//!   <https://cloud.google.com/compute/docs/faq#find_ip_range> and the file itself
//!   (<https://www.gstatic.com/ipranges/cloud.json>).
//! - Azure Service Tags: `{changeNumber, cloud, values: [{name, id, properties: {region,
//!   systemService, addressPrefixes: [..]}}]}`; `region` is empty for a tag that spans regions.
//!   Source: "Discover service tags by using downloadable JSON files",
//!   <https://learn.microsoft.com/azure/virtual-network/service-tags-overview>.

use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use super::{Breadth, CloudError, Provider, ProviderData, RangeEntry};

/// Parses `bytes` in `provider`'s format; `origin` (a path or URL) is only used in errors.
pub fn parse(provider: Provider, bytes: &[u8], origin: &str) -> Result<ProviderData, CloudError> {
    match provider {
        Provider::Aws => aws(bytes, origin),
        Provider::Gcp => gcp(bytes, origin),
        Provider::Azure => azure(bytes, origin),
    }
}

#[derive(Deserialize)]
struct AwsFile {
    #[serde(rename = "createDate")]
    create_date: String,
    prefixes: Vec<AwsPrefix>,
    ipv6_prefixes: Vec<AwsPrefix>,
}

#[derive(Deserialize)]
struct AwsPrefix {
    #[serde(alias = "ipv6_prefix")]
    ip_prefix: String,
    region: String,
    service: String,
}

/// Parses AWS `ip-ranges.json`.
pub fn aws(bytes: &[u8], origin: &str) -> Result<ProviderData, CloudError> {
    let file: AwsFile = json(bytes, origin, Provider::Aws)?;
    let published = aws_date(&file.create_date).ok_or_else(|| CloudError::Invalid {
        origin: origin.to_owned(),
        field: "createDate".into(),
        reason: format!(
            "{:?} is not a date like 2025-07-24-20-23-14",
            file.create_date
        ),
    })?;
    let mut entries = Vec::with_capacity(file.prefixes.len() + file.ipv6_prefixes.len());
    for (list, name) in [
        (&file.prefixes, "prefixes"),
        (&file.ipv6_prefixes, "ipv6_prefixes"),
    ] {
        for (i, p) in list.iter().enumerate() {
            let field = if name == "prefixes" {
                "ip_prefix"
            } else {
                "ipv6_prefix"
            };
            let net = prefix(&p.ip_prefix, origin, || format!("{name}[{i}].{field}"))?;
            let raw = p.service.trim();
            if raw.is_empty() {
                return Err(CloudError::Invalid {
                    origin: origin.to_owned(),
                    field: format!("{name}[{i}].service"),
                    reason: "is empty".into(),
                });
            }
            let breadth = match raw {
                "AMAZON" => Breadth::Superset,
                "EC2" => Breadth::Broad,
                _ => Breadth::Service,
            };
            entries.push(RangeEntry {
                net,
                service: service_name(Provider::Aws, raw),
                breadth,
                region: region(&p.region, "GLOBAL"),
            });
        }
    }
    done(Provider::Aws, Some(published), entries, origin)
}

#[derive(Deserialize)]
struct GcpFile {
    #[serde(rename = "creationTime")]
    creation_time: String,
    prefixes: Vec<GcpPrefix>,
}

#[derive(Deserialize)]
struct GcpPrefix {
    #[serde(rename = "ipv4Prefix")]
    ipv4: Option<String>,
    #[serde(rename = "ipv6Prefix")]
    ipv6: Option<String>,
    scope: String,
}

/// Parses Google Cloud `cloud.json`. It publishes one service, "Google Cloud": customers'
/// external addresses by region, tagged `gcp-cloud`.
pub fn gcp(bytes: &[u8], origin: &str) -> Result<ProviderData, CloudError> {
    let file: GcpFile = json(bytes, origin, Provider::Gcp)?;
    let published = gcp_date(&file.creation_time).ok_or_else(|| CloudError::Invalid {
        origin: origin.to_owned(),
        field: "creationTime".into(),
        reason: format!(
            "{:?} is not a date like 2025-07-24T19:16:28.780563",
            file.creation_time
        ),
    })?;
    let service: Arc<str> = Arc::from("gcp-cloud");
    let mut entries = Vec::with_capacity(file.prefixes.len());
    for (i, p) in file.prefixes.iter().enumerate() {
        let (text, field) = match (&p.ipv4, &p.ipv6) {
            (Some(v4), None) => (v4, "ipv4Prefix"),
            (None, Some(v6)) => (v6, "ipv6Prefix"),
            _ => {
                return Err(CloudError::Invalid {
                    origin: origin.to_owned(),
                    field: format!("prefixes[{i}]"),
                    reason: "needs exactly one of ipv4Prefix and ipv6Prefix".into(),
                });
            }
        };
        entries.push(RangeEntry {
            net: prefix(text, origin, || format!("prefixes[{i}].{field}"))?,
            service: service.clone(),
            breadth: Breadth::Superset,
            region: region(&p.scope, "global"),
        });
    }
    done(Provider::Gcp, Some(published), entries, origin)
}

#[derive(Deserialize)]
struct AzureFile {
    values: Vec<AzureTag>,
}

#[derive(Deserialize)]
struct AzureTag {
    name: String,
    properties: AzureProperties,
}

#[derive(Deserialize)]
struct AzureProperties {
    region: String,
    #[serde(rename = "systemService")]
    system_service: String,
    #[serde(rename = "addressPrefixes")]
    address_prefixes: Vec<String>,
}

/// Parses an Azure Service Tags file (`ServiceTags_Public_*.json`).
pub fn azure(bytes: &[u8], origin: &str) -> Result<ProviderData, CloudError> {
    let file: AzureFile = json(bytes, origin, Provider::Azure)?;
    let mut entries = Vec::new();
    for (t, tag) in file.values.iter().enumerate() {
        let p = &tag.properties;
        // AzureCloud and a few others (AzureFrontDoor.Frontend) have an empty systemService;
        // their tag name up to the first dot is the service then.
        let raw = match p.system_service.trim() {
            "" => tag.name.split('.').next().unwrap_or("").trim(),
            s => s,
        };
        if raw.is_empty() {
            return Err(CloudError::Invalid {
                origin: origin.to_owned(),
                field: format!("values[{t}].name"),
                reason: "names no service".into(),
            });
        }
        let service = service_name(Provider::Azure, raw);
        let breadth = if raw == "AzureCloud" {
            Breadth::Superset
        } else {
            Breadth::Service
        };
        let region = region(&p.region, "");
        for (i, text) in p.address_prefixes.iter().enumerate() {
            entries.push(RangeEntry {
                net: prefix(text, origin, || {
                    format!("values[{t}].properties.addressPrefixes[{i}]")
                })?,
                service: service.clone(),
                breadth,
                region: region.clone(),
            });
        }
    }
    done(Provider::Azure, None, entries, origin)
}

/// The netcost name of a provider's service: `<provider>-<service>`, lowercase, `_` as `-`;
/// Azure's `Azure` prefix is dropped (`AzureStorage` is `azure-storage`, not
/// `azure-azurestorage`).
pub fn service_name(provider: Provider, raw: &str) -> Arc<str> {
    let raw = match provider {
        Provider::Azure => raw
            .strip_prefix("Azure")
            .filter(|rest| !rest.is_empty())
            .unwrap_or(raw),
        Provider::Aws | Provider::Gcp => raw,
    };
    let name: String = raw
        .chars()
        .map(|c| match c {
            '_' | ' ' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    Arc::from(format!("{}-{name}", provider.as_str()))
}

fn json<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    origin: &str,
    provider: Provider,
) -> Result<T, CloudError> {
    serde_json::from_slice(bytes).map_err(|e| CloudError::Format {
        origin: origin.to_owned(),
        provider,
        reason: e.to_string(),
    })
}

fn prefix(text: &str, origin: &str, field: impl Fn() -> String) -> Result<IpNet, CloudError> {
    text.trim()
        .parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|e| CloudError::Invalid {
            origin: origin.to_owned(),
            field: field(),
            reason: format!("{text:?} is not a CIDR prefix: {e}"),
        })
}

/// The region, lowercase; `global` (the provider's word for "many regions") and empty are none.
fn region(text: &str, global: &str) -> Option<Arc<str>> {
    let text = text.trim();
    (!text.is_empty() && text != global).then(|| Arc::from(text.to_ascii_lowercase()))
}

fn done(
    provider: Provider,
    published: Option<u64>,
    entries: Vec<RangeEntry>,
    origin: &str,
) -> Result<ProviderData, CloudError> {
    if entries.is_empty() {
        return Err(CloudError::Empty {
            origin: origin.to_owned(),
        });
    }
    Ok(ProviderData {
        provider,
        published,
        entries,
    })
}

/// `2025-07-24-20-23-14` (UTC) as Unix seconds.
fn aws_date(text: &str) -> Option<u64> {
    let f: Vec<u64> = text
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match f.as_slice() {
        [y, mo, d, h, mi, s] => unix_seconds(*y, *mo, *d, *h, *mi, *s),
        _ => None,
    }
}

/// `2025-07-24T19:16:28.780563` (UTC; fractions dropped) as Unix seconds.
fn gcp_date(text: &str) -> Option<u64> {
    let (date, time) = text.split_once('T')?;
    let time = time.split('.').next()?.trim_end_matches('Z');
    let d: Vec<u64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match (d.as_slice(), t.as_slice()) {
        ([y, mo, da], [h, mi, s]) => unix_seconds(*y, *mo, *da, *h, *mi, *s),
        _ => None,
    }
}

/// Seconds since 1970-01-01T00:00:00Z of a proleptic Gregorian date and time, by the usual
/// days-from-civil arithmetic (eras of 400 years, years starting in March).
fn unix_seconds(y: u64, mo: u64, d: u64, h: u64, mi: u64, s: u64) -> Option<u64> {
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_dates_are_read_as_utc_unix_seconds() {
        // 2025-07-24T20:23:14Z; the AWS file's syncToken says 1753388594 for the same moment.
        assert_eq!(aws_date("2025-07-24-20-23-14"), Some(1_753_388_594));
        assert_eq!(gcp_date("2025-07-24T19:16:28.780563"), Some(1_753_384_588));
        assert_eq!(aws_date("2025-13-24-20-23-14"), None);
        assert_eq!(gcp_date("yesterday"), None);
    }

    #[test]
    fn service_names_are_provider_dash_lowercase_service() {
        assert_eq!(&*service_name(Provider::Aws, "S3"), "aws-s3");
        assert_eq!(
            &*service_name(Provider::Aws, "ROUTE53_HEALTHCHECKS"),
            "aws-route53-healthchecks"
        );
        assert_eq!(
            &*service_name(Provider::Azure, "AzureStorage"),
            "azure-storage"
        );
        assert_eq!(&*service_name(Provider::Azure, "AzureCloud"), "azure-cloud");
        assert_eq!(&*service_name(Provider::Azure, "PowerBI"), "azure-powerbi");
        assert_eq!(&*service_name(Provider::Azure, "Azure"), "azure-azure");
    }
}
