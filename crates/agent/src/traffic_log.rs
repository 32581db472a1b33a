//! The traffic log, as Kubecost's network-costs writes it: every interval, each source's top
//! destinations with their bytes, so an operator can see who talks to whom without Prometheus.

use netcost_core::pipeline::TalkerReport;

/// How many destinations per source are logged (Kubecost logs five).
pub const TOP_DESTINATIONS: usize = 5;

/// Writes one log line per source.
pub fn write(reports: &[TalkerReport]) {
    if reports.is_empty() {
        tracing::info!(target: "netcost::traffic", "traffic log: no attributed traffic this interval");
        return;
    }
    for report in reports {
        tracing::info!(
            target: "netcost::traffic",
            source = %report.source,
            top = %format_destinations(report),
            "traffic log"
        );
    }
}

fn format_destinations(report: &TalkerReport) -> String {
    report
        .destinations
        .iter()
        .map(|(name, class, bytes)| format!("{name} [{}] {bytes} B", class.as_str()))
        .collect::<Vec<_>>()
        .join("; ")
}
