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
//! What it does not do: parse the formats or decide classes (`netcost_core::cloud`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netcost_core::cloud::{CloudError, CloudRanges, Provider, ProviderData, builtin, parse};
use netcost_core::config::ClassificationConfig;

/// The largest ranges file accepted from a URL. Azure's is about 4 MB in 2025.
const MAX_DOWNLOAD_BYTES: u64 = 64 << 20;
/// How long one download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a provider's current ranges file is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeSource {
    /// A local file.
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl RangeSource {
    /// Parses a `--cloud-ranges` value: `aws=PATH_OR_URL`, `gcp=…` or `azure=…`.
    pub fn parse_flag(text: &str) -> Result<(Provider, RangeSource), String> {
        let (name, place) = text.split_once('=').ok_or_else(|| {
            format!("{text:?}: write PROVIDER=PATH_OR_URL, e.g. aws=/etc/netcost/ip-ranges.json")
        })?;
        let provider = Provider::from_name(name.trim())
            .ok_or_else(|| format!("{name:?} is not a provider: use aws, gcp or azure"))?;
        let place = place.trim();
        if place.is_empty() {
            return Err(format!("{text:?}: the path or URL is empty"));
        }
        let source = if place.starts_with("http://") || place.starts_with("https://") {
            RangeSource::Url(place.to_owned())
        } else {
            RangeSource::File(PathBuf::from(place))
        };
        Ok((provider, source))
    }

    /// The path or URL, for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            RangeSource::File(p) => p.display().to_string(),
            RangeSource::Url(u) => u.clone(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            RangeSource::File(_) => "file",
            RangeSource::Url(_) => "url",
        }
    }
}

/// Cloud-range settings of the agent.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    /// Current files per provider; a provider without one uses the built-in table.
    pub sources: Vec<(Provider, RangeSource)>,
    /// How often configured sources are read again.
    pub refresh: Duration,
}

impl Default for CloudSettings {
    /// No configured sources (the built-in table), refreshed daily.
    fn default() -> Self {
        CloudSettings {
            sources: Vec::new(),
            refresh: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why a ranges source could not be used.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The download failed.
    #[error("{url}: download failed: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// The bytes are not a usable ranges file.
    #[error(transparent)]
    Parse(#[from] CloudError),
}

impl FetchError {
    /// A short, bounded label for `netcost_cloud_ranges_refresh_failures_total{reason}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            FetchError::Read { .. } => "read",
            FetchError::Http { .. } => "http",
            FetchError::Parse(e) => e.metric_label(),
        }
    }
}

/// Reads and parses one provider's ranges from `source`.
pub fn fetch(provider: Provider, source: &RangeSource) -> Result<ProviderData, FetchError> {
    let bytes = match source {
        RangeSource::File(path) => std::fs::read(path).map_err(|source| FetchError::Read {
            path: path.clone(),
            source,
        })?,
        RangeSource::Url(url) => download(url)?,
    };
    Ok(parse::parse(provider, &bytes, &source.describe())?)
}

fn download(url: &str) -> Result<Vec<u8>, FetchError> {
    let http = |reason: String| FetchError::Http {
        url: url.to_owned(),
        reason,
    };
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(DOWNLOAD_TIMEOUT))
        .build()
        .new_agent();
    let mut response = agent.get(url).call().map_err(|e| http(e.to_string()))?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_DOWNLOAD_BYTES)
        .read_to_vec()
        .map_err(|e| http(e.to_string()))
}

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

/// The data in use per provider, and the state of each configured source.
#[derive(Debug)]
pub struct CloudTables {
    sources: Vec<(Provider, RangeSource)>,
    data: BTreeMap<Provider, Arc<ProviderData>>,
    status: BTreeMap<Provider, ProviderStatus>,
}

impl CloudTables {
    /// The initial tables: for every provider switched on in `config`, its configured source, or
    /// the built-in data if it has none or it fails. Never fails: the worst case is the built-in
    /// table and an error in the log.
    pub fn load(settings: &CloudSettings, config: &ClassificationConfig) -> CloudTables {
        let enabled: Vec<Provider> = Provider::ALL
            .into_iter()
            .filter(|p| config.provider_enabled(*p))
            .collect();
        for (provider, source) in &settings.sources {
            if !enabled.contains(provider) {
                tracing::warn!(
                    %provider,
                    source = %source.describe(),
                    "cloud ranges configured for a provider whose services switch is off in the config: ignored"
                );
            }
        }
        let builtin = match builtin::builtin() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "built-in cloud ranges unusable");
                Vec::new()
            }
        };
        let builtin_date = builtin
            .iter()
            .filter_map(|d| d.published)
            .max()
            .unwrap_or(0);
        let mut tables = CloudTables {
            sources: settings
                .sources
                .iter()
                .filter(|(p, _)| enabled.contains(p))
                .cloned()
                .collect(),
            data: BTreeMap::new(),
            status: BTreeMap::new(),
        };
        for data in builtin
            .into_iter()
            .filter(|d| enabled.contains(&d.provider))
        {
            let status = ProviderStatus {
                provider: data.provider,
                source: "builtin",
                published_seconds: data.published.unwrap_or(builtin_date),
                prefixes: data.entries.len() as u64,
                failures: BTreeMap::new(),
            };
            tables.status.insert(data.provider, status);
            tables.data.insert(data.provider, Arc::new(data));
        }
        tables.refresh();
        tables
    }

    /// Reads every configured source again. Returns whether any provider's data changed; a
    /// source that fails keeps its provider's last good data.
    pub fn refresh(&mut self) -> bool {
        let mut changed = false;
        for (provider, source) in &self.sources {
            match fetch(*provider, source) {
                Ok(data) => {
                    let published = data.published.unwrap_or_else(now_seconds);
                    tracing::info!(
                        %provider,
                        source = %source.describe(),
                        prefixes = data.entries.len(),
                        published,
                        "cloud ranges loaded"
                    );
                    let failures = self
                        .status
                        .get(provider)
                        .map(|s| s.failures.clone())
                        .unwrap_or_default();
                    self.status.insert(
                        *provider,
                        ProviderStatus {
                            provider: *provider,
                            source: source.kind(),
                            published_seconds: published,
                            prefixes: data.entries.len() as u64,
                            failures,
                        },
                    );
                    if self.data.get(provider).is_none_or(|old| **old != data) {
                        changed = true;
                    }
                    self.data.insert(*provider, Arc::new(data));
                }
                Err(e) => {
                    let kept = self.status.get(provider).map_or("nothing", |s| s.source);
                    tracing::error!(
                        %provider,
                        error = %e,
                        keeping = kept,
                        "cloud ranges not refreshed; the last good table stays in use"
                    );
                    let status = self.status.entry(*provider).or_insert(ProviderStatus {
                        provider: *provider,
                        source: "none",
                        published_seconds: 0,
                        prefixes: 0,
                        failures: BTreeMap::new(),
                    });
                    *status.failures.entry(e.metric_label()).or_insert(0) += 1;
                }
            }
        }
        changed
    }

    /// A lookup table of the data in use. `None` when every provider is switched off.
    pub fn ranges(&self) -> Option<Arc<CloudRanges>> {
        if self.status.is_empty() {
            return None;
        }
        let started = Instant::now();
        let ranges = CloudRanges::build(self.data.values().map(|d| &**d));
        tracing::debug!(
            prefixes = ranges.prefixes(),
            bytes = ranges.memory_bytes(),
            ms = started.elapsed().as_millis() as u64,
            "cloud ranges table built"
        );
        Some(Arc::new(ranges))
    }

    /// The figures to export.
    pub fn status(&self) -> CloudStatus {
        CloudStatus {
            providers: self.status.values().cloned().collect(),
        }
    }

    /// Whether any source is configured (only then is a refresh thread worth running).
    pub fn has_sources(&self) -> bool {
        !self.sources.is_empty()
    }
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

/// Starts the refresh thread: every `refresh`, re-read the sources of `tables`, publish the
/// status, and offer a new table when something changed. The thread ends by itself once the
/// agent's shared state is gone (`cloud` is held weakly).
pub fn spawn_refresher(
    mut tables: CloudTables,
    refresh: Duration,
    cloud: Weak<crate::Shared>,
) -> std::io::Result<()> {
    if !tables.has_sources() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("netcost-cloud-ranges".into())
        .spawn(move || {
            let mut next = Instant::now() + refresh;
            loop {
                // Sleep in short steps, so the thread notices the agent stopping.
                std::thread::sleep(Duration::from_secs(1).min(refresh));
                if Instant::now() < next {
                    if cloud.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
                next = Instant::now() + refresh;
                let changed = tables.refresh();
                let ranges = changed.then(|| tables.ranges()).flatten();
                let Some(shared) = cloud.upgrade() else {
                    return;
                };
                shared.cloud.set_status(tables.status());
                if let Some(r) = ranges {
                    shared.cloud.offer_ranges(r);
                }
            }
        })
        .map(|_| ())
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
    use std::io::{Read, Write};
    use std::net::{IpAddr, TcpListener};
    use std::path::Path;

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
