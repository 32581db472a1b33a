//! The data in use per provider: the built-in table at first, replaced by what the configured
//! sources give, with the last good data kept when a read fails.
//!
//! What it does not do: read files or URLs itself (a [`Fetch`] does), or schedule refreshes
//! ([`super::spawn_refresher`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use netcost_core::cloud::{CloudRanges, Provider, ProviderData, builtin};
use netcost_core::config::ClassificationConfig;

use super::source::{CloudSettings, Fetch, RangeSource, Sources};
use super::{CloudStatus, ProviderStatus, now_seconds};

/// The data in use per provider, and the state of each configured source.
pub struct CloudTables {
    fetcher: Box<dyn Fetch>,
    sources: Vec<(Provider, RangeSource)>,
    data: BTreeMap<Provider, Arc<ProviderData>>,
    status: BTreeMap<Provider, ProviderStatus>,
}

impl CloudTables {
    /// The initial tables: for every provider switched on in `config`, its configured source, or
    /// the built-in data if it has none or it fails. Never fails: the worst case is the built-in
    /// table and an error in the log.
    pub fn load(settings: &CloudSettings, config: &ClassificationConfig) -> CloudTables {
        CloudTables::load_with(settings, config, Box::new(Sources))
    }

    /// As [`CloudTables::load`], reading the sources with `fetcher`, now and at every refresh.
    pub fn load_with(
        settings: &CloudSettings,
        config: &ClassificationConfig,
        fetcher: Box<dyn Fetch>,
    ) -> CloudTables {
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
            fetcher,
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
            match self.fetcher.fetch(*provider, source) {
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

impl std::fmt::Debug for CloudTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudTables")
            .field("sources", &self.sources)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}
