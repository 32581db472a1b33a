//! The parsed form of a request: the window, the aggregate, the filter, the time series step
//! and the row limit. The API and the CLI turn their text into these once, at the edge; the
//! engine takes only these, so it never parses, and a mistake in the text is a typed error
//! with a stable code before any backend is asked.

use netcost_cost::allocate::Usage;
pub use netcost_cost::allocate::{Aggregate, AggregateError};
pub use netcost_cost::window::{Window, WindowError};

/// Why a request's text was refused. Each is the caller's mistake (HTTP 400) and has a stable
/// code ([`QueryError::code`]).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The window.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// The aggregate.
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// The filter.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The time series step.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The row limit.
    #[error("limit {text:?} must be a number from 1 to {max}")]
    Limit {
        /// What was given.
        text: String,
        /// The largest limit allowed.
        max: usize,
    },
}

impl QueryError {
    /// A stable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Window(_) => "bad_window",
            QueryError::Aggregate(_) => "bad_aggregate",
            QueryError::Filter(_) => "bad_filter",
            QueryError::Step(_) => "bad_step",
            QueryError::Limit { .. } => "bad_limit",
        }
    }
}

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A term without a `:`.
    #[error("filter term {0:?} is not key:value (e.g. namespace:shop)")]
    NotKeyValue(String),
    /// A key the filter does not know.
    #[error("unknown filter key {0:?}: use namespace, pod, node, workload or service")]
    UnknownKey(String),
}

/// A filter: `key:value` terms joined by commas, all of which must match. Keys: `namespace`,
/// `pod`, `node`, `workload` (`Kind/name`) and `service`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    terms: Vec<(FilterKey, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterKey {
    Namespace,
    Pod,
    Node,
    Workload,
    Service,
}

impl Filter {
    /// Parses `namespace:shop,node:node-a`; an empty text matches everything.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, value) = term
                .split_once(':')
                .ok_or_else(|| FilterError::NotKeyValue(term.to_owned()))?;
            let key = match key.trim() {
                "namespace" => FilterKey::Namespace,
                "pod" => FilterKey::Pod,
                "node" => FilterKey::Node,
                "workload" => FilterKey::Workload,
                "service" => FilterKey::Service,
                other => return Err(FilterError::UnknownKey(other.to_owned())),
            };
            terms.push((key, value.trim().trim_matches('"').to_owned()));
        }
        Ok(Filter { terms })
    }

    /// True when `usage` matches every term.
    pub(crate) fn matches(&self, usage: &Usage) -> bool {
        self.terms.iter().all(|(key, value)| match key {
            FilterKey::Namespace => usage.pod.namespace == *value,
            FilterKey::Pod => usage.pod.pod == *value,
            FilterKey::Node => usage.pod.node.as_deref() == Some(value.as_str()),
            FilterKey::Workload => usage
                .pod
                .workload
                .as_ref()
                .is_some_and(|(k, n)| format!("{k}/{n}") == *value),
            FilterKey::Service => usage.service.as_deref() == Some(value.as_str()),
        })
    }
}

/// The most steps one time series request may ask for: each step is a full allocation, so this
/// bounds the queries one page load sends to Prometheus.
pub const MAX_STEPS: i64 = 200;

/// Steps `auto` picks from, shortest first: the first that cuts the window into fewer than
/// [`AUTO_STEPS`] steps.
const AUTO_STEP_CHOICES: [i64; 8] = [60, 300, 900, 3_600, 10_800, 21_600, 86_400, 604_800];
const AUTO_STEPS: i64 = 48;
/// `auto`'s step for a window longer than 48 weeks: 30 days.
const LONGEST_AUTO_STEP: i64 = 2_592_000;

/// Why a step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// Not `auto` nor a duration.
    #[error("step {0:?} is not auto or a duration like 5m, 1h or 1d")]
    NotADuration(String),
    /// The step cuts the window into more than [`MAX_STEPS`] steps.
    #[error(
        "a step of {step_seconds} s cuts the window into {count} steps; the most is {max}: use a \
         longer step",
        max = MAX_STEPS
    )]
    TooMany {
        /// The step.
        step_seconds: i64,
        /// How many steps it makes.
        count: i64,
    },
}

/// The step of a time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Step {
    /// Fewer than 48 steps of a round length.
    #[default]
    Auto,
    /// Steps of this many seconds.
    Seconds(i64),
}

impl Step {
    /// Parses `auto` (or nothing) or a duration like `5m`, `1h`, `1d`.
    pub fn parse(text: &str) -> Result<Step, StepError> {
        match text.trim() {
            "" | "auto" => Ok(Step::Auto),
            duration => netcost_cost::window::duration_seconds(duration)
                .map(Step::Seconds)
                .ok_or_else(|| StepError::NotADuration(text.to_owned())),
        }
    }

    /// The step's length over `window`, in seconds, and how many steps it makes.
    ///
    /// # Errors
    ///
    /// [`StepError::TooMany`] when that is more than [`MAX_STEPS`].
    pub fn over(self, window: &Window) -> Result<(i64, i64), StepError> {
        let span = window.seconds();
        let step_seconds = match self {
            Step::Auto => AUTO_STEP_CHOICES
                .iter()
                .copied()
                .find(|s| span / s < AUTO_STEPS)
                .unwrap_or(LONGEST_AUTO_STEP),
            Step::Seconds(s) => s.max(1),
        };
        let count = (span + step_seconds - 1) / step_seconds;
        if count > MAX_STEPS {
            return Err(StepError::TooMany {
                step_seconds,
                count,
            });
        }
        Ok((step_seconds, count))
    }
}

/// Parses a row limit: a number from 1 to `max`, `default` when not given.
pub fn parse_limit(text: Option<&str>, default: usize, max: usize) -> Result<usize, QueryError> {
    match text.map(|t| t.trim().parse::<usize>()) {
        None => Ok(default),
        Some(Ok(n)) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(QueryError::Limit {
            text: text.unwrap_or_default().to_owned(),
            max,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_steps_and_limits_parse_or_say_what_is_wrong() {
        assert_eq!(
            Filter::parse("namespace:shop, nope"),
            Err(FilterError::NotKeyValue("nope".into()))
        );
        assert_eq!(
            Filter::parse("team:a"),
            Err(FilterError::UnknownKey("team".into()))
        );
        assert_eq!(Filter::parse(""), Ok(Filter::default()));
        assert_eq!(Step::parse("auto"), Ok(Step::Auto));
        assert_eq!(Step::parse("5m"), Ok(Step::Seconds(300)));
        assert_eq!(
            Step::parse("often"),
            Err(StepError::NotADuration("often".into()))
        );
        let day = Window {
            start: jiff::Timestamp::UNIX_EPOCH,
            end: jiff::Timestamp::from_second(86_400).unwrap_or_default(),
        };
        // A day: auto picks an hour (24 steps); a minute makes 1,440, over the limit.
        assert_eq!(Step::Auto.over(&day), Ok((3_600, 24)));
        assert_eq!(
            Step::Seconds(60).over(&day),
            Err(StepError::TooMany {
                step_seconds: 60,
                count: 1_440
            })
        );
        assert_eq!(parse_limit(None, 50, 1_000), Ok(50));
        assert_eq!(parse_limit(Some("7"), 50, 1_000), Ok(7));
        assert!(matches!(
            parse_limit(Some("0"), 50, 1_000),
            Err(QueryError::Limit { max: 1_000, .. })
        ));
    }
}
