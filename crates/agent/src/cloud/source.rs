//! Where fresh ranges come from: the `--cloud-ranges PROVIDER=PATH_OR_URL` flag, and reading a
//! file or downloading a URL (at most 64 MiB, 60 s).
//!
//! What it does not do: keep or swap tables ([`super::CloudTables`]), or parse the formats
//! (`netcost_core::cloud::parse`).

use std::path::PathBuf;
use std::time::Duration;

use netcost_core::cloud::{CloudError, Provider, ProviderData, parse};

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

    pub(super) fn kind(&self) -> &'static str {
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

/// Reads one provider's ranges: what [`CloudTables`](super::CloudTables) asks for at start and
/// at every refresh. [`Sources`] reads the configured files and URLs.
pub trait Fetch: Send {
    /// The ranges of `provider`, read and parsed from `source`.
    fn fetch(&self, provider: Provider, source: &RangeSource) -> Result<ProviderData, FetchError>;
}

/// The configured files and URLs, read with [`fetch`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources;

impl Fetch for Sources {
    fn fetch(&self, provider: Provider, source: &RangeSource) -> Result<ProviderData, FetchError> {
        fetch(provider, source)
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
