//! Test support, behind the `prometheus-tests` feature: a real Prometheus (Debian's 2.x
//! `prometheus` binary, or the current 3.x that `scripts/install-test-deps.sh` builds) or a single-node VictoriaMetrics (Debian's `victoria-metrics`, its
//! built-in scraper) started on loopback for the duration of a test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prometheus server scraping some targets every second; killed and cleaned up on drop.
pub struct Prometheus {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// The Prometheus servers the query tests run against, by name: Debian's 2.x (`prometheus` on
/// the PATH) and a current 3.x (`prometheus3` in `$NETCOST_TEST_BIN`, `/opt/netcost-test-bin` by
/// default, built from its Go module by `scripts/install-test-deps.sh`). 3.0 changed what a
/// range selector holds (a sample exactly at its start is no longer in it), so each query is
/// checked against both.
pub fn prometheus_servers() -> [(&'static str, PathBuf); 2] {
    let bin = std::env::var_os("NETCOST_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/netcost-test-bin"));
    let v3 = bin.join("prometheus3");
    assert!(
        v3.is_file(),
        "{} is missing: run scripts/install-test-deps.sh, which builds it from its Go module",
        v3.display()
    );
    [
        ("prometheus-2", PathBuf::from("prometheus")),
        ("prometheus-3", v3),
    ]
}

impl Prometheus {
    /// Starts Debian's Prometheus scraping `targets` every second, with its own scratch
    /// directory, and waits until it answers.
    pub fn start(name: &str, targets: &[SocketAddr]) -> Prometheus {
        Prometheus::start_binary(Path::new("prometheus"), name, targets)
    }

    /// [`Prometheus::start`] with the server binary at `program` (see [`prometheus_servers`]).
    pub fn start_binary(program: &Path, name: &str, targets: &[SocketAddr]) -> Prometheus {
        let dir = scratch_dir("prom", name);
        let config = scrape_config(&dir, targets);
        let port = free_port();
        let child = Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (scripts/install-test-deps.sh installs it): {e}",
                    program.display()
                )
            });
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        wait_until("Prometheus to answer", || {
            ureq::get(format!("{}/-/ready", prometheus.url))
                .call()
                .is_ok()
        });
        prometheus
    }

    /// An instant query's single value, at `time` (Unix seconds) if given.
    pub fn instant(&self, promql: &str, time: Option<f64>) -> Option<f64> {
        instant(&self.url, promql, time)
    }
}

/// A single-node VictoriaMetrics scraping some targets every second with its built-in scraper
/// (`-promscrape.config`, the same file Prometheus reads); killed and cleaned up on drop.
///
/// Two flags make it answer like the Prometheus above: `-search.latencyOffset=0s` (by default it
/// hides the last 30 s from queries evaluated near the current time, for samples still in
/// flight) and `-search.disableCache` (no cached answer for a window asked again).
pub struct VictoriaMetrics {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`, which serves the Prometheus query API.
    pub url: String,
    dir: PathBuf,
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl VictoriaMetrics {
    /// Starts VictoriaMetrics scraping `targets` every second, with its own scratch directory,
    /// and waits until it answers.
    pub fn start(name: &str, targets: &[SocketAddr]) -> VictoriaMetrics {
        let dir = scratch_dir("vm", name);
        let config = scrape_config(&dir, targets);
        let port = free_port();
        let child = Command::new("victoria-metrics")
            .arg(format!("-promscrape.config={}", config.display()))
            .arg(format!("-storageDataPath={}", dir.join("data").display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start victoria-metrics (apt-get install victoria-metrics): {e}")
            });
        let vm = VictoriaMetrics {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        wait_until("VictoriaMetrics to answer", || {
            ureq::get(format!("{}/health", vm.url)).call().is_ok()
        });
        vm
    }

    /// An instant query's single value, at `time` (Unix seconds) if given.
    pub fn instant(&self, query: &str, time: Option<f64>) -> Option<f64> {
        instant(&self.url, query, time)
    }
}

/// An empty scratch directory for one test's server.
fn scratch_dir(kind: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netcost-{kind}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Writes a Prometheus scrape config for `targets`, every second, into `dir`.
fn scrape_config(dir: &Path, targets: &[SocketAddr]) -> PathBuf {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n- job_name: netcost\n  static_configs:\n  - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    config
}

/// An instant query's single value from the Prometheus query API at `url`, at `time` (Unix
/// seconds).
pub fn instant_at(url: &str, query: &str, time: f64) -> Option<f64> {
    instant(url, query, Some(time))
}

/// An instant query's single value from the Prometheus query API at `url`.
fn instant(url: &str, query: &str, time: Option<f64>) -> Option<f64> {
    let mut request = ureq::get(format!("{url}/api/v1/query")).query("query", query);
    if let Some(t) = time {
        request = request.query("time", format!("{t:.3}"));
    }
    let body = request.call().ok()?.body_mut().read_to_string().ok()?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Polls `done` every 250 ms for up to 60 s, then fails the test naming `what`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}
