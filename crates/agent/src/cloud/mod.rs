//! The cloud providers' ranges at run time: which table is in use, where fresh files come from,
//! and the refresh schedule.
//!
//! At start the agent takes, for every provider whose `services` switch is on, the file or URL
//! given with `--cloud-ranges PROVIDER=PATH_OR_URL`, or else the built-in July 2025 table of
//! `netcost-core`. A configured source that cannot be read or parsed at start falls back to the
//! built-in table. Then a thread re-reads the configured sources every `--cloud-ranges-refresh`
//! (default 24 h). A refresh that fails keeps the last good data of that provider, logs the file
//! and the reason, and counts it in `netcost_cloud_ranges_refresh_failures_total{provider,reason}`.
//! A successful refresh builds a new table and hands it to the pipeline thread, which swaps it
//! in between two reads (an `Arc` swap; see [`CloudShared::take_ranges`]).
//!
//! The parts: `source` (the flag, reading a file or URL, the [`Fetch`] trait), `tables`
//! ([`CloudTables`]: the data in use per provider) and `refresher` (the thread that refreshes
//! them, [`spawn_refresher`]).
//!
//! What it does not do: parse the formats or decide classes (`netcost_core::cloud`).

mod refresher;
mod source;
mod tables;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use netcost_core::cloud::{CloudRanges, Provider};

pub use refresher::{Refresher, spawn_refresher};
pub use source::{CloudSettings, Fetch, FetchError, RangeSource, Sources, fetch};
pub use tables::CloudTables;

/// One provider's line in the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// Whose ranges.
    pub provider: Provider,
    /// Where the data in use came from: `builtin`, `file` or `url`.
    pub source: &'static str,
    /// When the data in use was published (Unix seconds): the file's own date where it has one;
    /// for Azure, whose files carry none, the time the agent read it (the built-in table: the
    /// date of the AWS snapshot taken with it).
    pub published_seconds: u64,
    /// Prefixes in the data in use.
    pub prefixes: u64,
    /// Failed reads by reason (`read`, `http`, `format`, `invalid`, `empty`, `builtin`).
    pub failures: BTreeMap<&'static str, u64>,
}

/// What the agent exports about its cloud ranges: one entry per provider switched on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudStatus {
    /// Per provider, in [`Provider::ALL`] order.
    pub providers: Vec<ProviderStatus>,
}

/// The cloud ranges' share of the agent's shared state: the latest status for `/metrics`, and a
/// new table waiting for the pipeline thread.
#[derive(Debug, Default)]
pub struct CloudShared {
    status: Mutex<Arc<CloudStatus>>,
    pending: Mutex<Option<Arc<CloudRanges>>>,
}

impl CloudShared {
    /// The status to render now.
    pub fn status(&self) -> Arc<CloudStatus> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Publishes `status`.
    pub fn set_status(&self, status: CloudStatus) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(status);
    }

    /// Hands a new table to the pipeline thread (replacing one it has not taken yet).
    pub fn offer_ranges(&self, ranges: Arc<CloudRanges>) {
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(ranges);
    }

    /// The new table, if one arrived since the last call. The pipeline thread calls this once
    /// per loop; it costs one uncontended lock.
    pub fn take_ranges(&self) -> Option<Arc<CloudRanges>> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netcost_core::config::ClassificationConfig;
    use std::io::{Read, Write};
    use std::net::{IpAddr, TcpListener};
    use std::path::Path;
    use std::time::Duration;

    fn snapshot(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/cloud-ip-ranges")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn aws_only() -> ClassificationConfig {
        ClassificationConfig::from_yaml_str(
            "services:\n  amazon-web-services: true\n",
            Path::new("t.yaml"),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn service_of(tables: &CloudTables, addr: &str) -> Option<String> {
        let ip: IpAddr = addr.parse().unwrap_or_else(|e| panic!("{e}"));
        let ranges = tables.ranges()?;
        ranges.lookup(ip).map(|t| t.service.to_string())
    }

    /// Serves each body in turn to one request each, on 127.0.0.1, then stops.
    fn serve(bodies: Vec<(u16, Vec<u8>)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || {
            for (status, body) in bodies {
                let Ok((mut conn, _)) = listener.accept() else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request);
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        format!("http://{addr}/ip-ranges.json")
    }

    #[test]
    fn flags_name_a_provider_and_a_path_or_url() {
        assert_eq!(
            RangeSource::parse_flag("aws=/etc/ip-ranges.json"),
            Ok((
                Provider::Aws,
                RangeSource::File("/etc/ip-ranges.json".into())
            ))
        );
        assert_eq!(
            RangeSource::parse_flag("azure=https://example.test/tags.json"),
            Ok((
                Provider::Azure,
                RangeSource::Url("https://example.test/tags.json".into())
            ))
        );
        assert!(RangeSource::parse_flag("oracle=/x").is_err());
        assert!(RangeSource::parse_flag("aws").is_err());
    }

    #[test]
    fn without_sources_the_builtin_table_of_each_enabled_provider_is_used() {
        let tables = CloudTables::load(&CloudSettings::default(), &aws_only());
        let status = tables.status();
        assert_eq!(status.providers.len(), 1);
        assert_eq!(status.providers[0].source, "builtin");
        // The built-in AWS data is the July 2025 file: createDate 2025-07-24-20-23-14.
        assert_eq!(status.providers[0].published_seconds, 1_753_388_594);
        assert_eq!(
            service_of(&tables, "54.231.10.20").as_deref(),
            Some("aws-s3")
        );
        // Google is switched off: its 8.34.210.0/24 is not tagged.
        assert_eq!(service_of(&tables, "8.34.210.99"), None);
    }

    #[test]
    fn a_failed_refresh_keeps_the_last_good_table_and_is_counted() {
        let dir = std::env::temp_dir().join(format!("netcost-cloud-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("aws.json");
        // A one-prefix file: 198.51.100.0/24 as S3 in us-east-1 (documentation range, so only
        // this file can tag it).
        std::fs::write(
            &path,
            br#"{"syncToken":"1","createDate":"2025-08-01-00-00-00","prefixes":[{"ip_prefix":"198.51.100.0/24","region":"us-east-1","service":"S3","network_border_group":"us-east-1"}],"ipv6_prefixes":[]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let settings = CloudSettings {
            sources: vec![(Provider::Aws, RangeSource::File(path.clone()))],
            refresh: Duration::from_secs(3600),
        };
        let mut tables = CloudTables::load(&settings, &aws_only());
        assert_eq!(
            service_of(&tables, "198.51.100.7").as_deref(),
            Some("aws-s3")
        );
        // The file replaced the built-in data: the built-in S3 range is gone.
        assert_eq!(service_of(&tables, "54.231.10.20"), None);
        assert_eq!(tables.status().providers[0].source, "file");
        assert_eq!(
            tables.status().providers[0].published_seconds,
            1_754_006_400
        );

        // Truncated: refused, the table stays.
        std::fs::write(
            &path,
            br#"{"syncToken":"1","createDate":"2025-08-02-00-00-00","prefixes":[{"ip_pre"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!tables.refresh());
        assert_eq!(
            service_of(&tables, "198.51.100.7").as_deref(),
            Some("aws-s3")
        );
        // Gone: also refused.
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!tables.refresh());
        assert_eq!(
            service_of(&tables, "198.51.100.7").as_deref(),
            Some("aws-s3")
        );
        let status = &tables.status().providers[0];
        assert_eq!(
            status.failures,
            BTreeMap::from([("format", 1), ("read", 1)])
        );
        assert_eq!(status.published_seconds, 1_754_006_400);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ranges_are_downloaded_from_a_url_and_a_bad_download_keeps_them() {
        let aws = snapshot("aws-ip-ranges.json");
        let half = aws[..aws.len() / 2].to_vec();
        let url = serve(vec![(200, aws), (200, half), (503, b"busy".to_vec())]);
        let settings = CloudSettings {
            sources: vec![(Provider::Aws, RangeSource::Url(url))],
            refresh: Duration::from_secs(3600),
        };
        let mut tables = CloudTables::load(&settings, &aws_only());
        let status = tables.status().providers[0].clone();
        assert_eq!((status.source, status.prefixes), ("url", 13_344));
        assert_eq!(
            service_of(&tables, "54.231.10.20").as_deref(),
            Some("aws-s3")
        );
        assert!(!tables.refresh()); // truncated body
        assert!(!tables.refresh()); // HTTP 503
        assert_eq!(
            service_of(&tables, "54.231.10.20").as_deref(),
            Some("aws-s3")
        );
        assert_eq!(
            tables.status().providers[0].failures,
            BTreeMap::from([("format", 1), ("http", 1)])
        );
    }

    #[test]
    fn a_source_that_fails_at_start_falls_back_to_the_builtin_table() {
        let settings = CloudSettings {
            sources: vec![(
                Provider::Aws,
                RangeSource::File("/nonexistent/netcost/aws.json".into()),
            )],
            refresh: Duration::from_secs(3600),
        };
        let tables = CloudTables::load(&settings, &aws_only());
        let status = &tables.status().providers[0];
        assert_eq!(status.source, "builtin");
        assert_eq!(status.failures, BTreeMap::from([("read", 1)]));
        assert_eq!(
            service_of(&tables, "54.231.10.20").as_deref(),
            Some("aws-s3")
        );
    }
}
