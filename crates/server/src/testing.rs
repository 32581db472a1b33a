//! Test support, behind the `prometheus-tests` feature: a real Prometheus (Debian's
//! `prometheus` binary) started on loopback for the duration of a test.

use std::net::SocketAddr;
use std::path::PathBuf;
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

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second, with its own scratch directory, and
    /// waits until it answers.
    pub fn start(name: &str, targets: &[SocketAddr]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("netcost-prom-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
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
        let port = free_port();
        let child = Command::new("prometheus")
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
                panic!("cannot start prometheus (apt-get install prometheus): {e}")
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
        let mut request = ureq::get(format!("{}/api/v1/query", self.url)).query("query", promql);
        if let Some(t) = time {
            request = request.query("time", format!("{t:.3}"));
        }
        let body = request.call().ok()?.body_mut().read_to_string().ok()?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

/// Polls `done` every 250 ms for up to 60 s, then fails the test naming `what`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}
