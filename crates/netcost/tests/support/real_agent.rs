//! `netcost agent` as a process, for the tests against a real kube-apiserver (included by path
//! from those tests, not part of the kernel tests' `support`): it finds the API through
//! `KUBECONFIG`, as it would outside a pod, and reads a conntrack table in `/proc` format that the
//! test writes, so that the bytes it counts are the bytes the test put in. Killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::real_cluster::RealCluster;

/// How long the agent may take to follow a change of the cluster.
pub const FOLLOW: Duration = Duration::from_secs(60);

/// The agent process, killed on drop.
pub struct Agent {
    child: Child,
    /// `127.0.0.1:PORT`, where its `/metrics` is.
    pub addr: String,
    pub metrics: String,
    pub log: PathBuf,
    /// The conntrack table it reads (`--source proc`), empty at the start.
    pub table: PathBuf,
}

impl Agent {
    /// Starts the agent of `node`, with `token` for the chart's ServiceAccount.
    pub fn start(cluster: &RealCluster, account: &str, token: &str, node: &str) -> Agent {
        let kubeconfig = cluster.write_kubeconfig(account, token);
        let table = cluster.dir().join(format!("nf_conntrack-{node}"));
        std::fs::write(&table, "").unwrap_or_else(|e| panic!("{}: {e}", table.display()));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let addr = format!("127.0.0.1:{port}");
        let log = cluster.dir().join(format!("agent-{node}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_netcost"))
            .arg("agent")
            .args(["--node-name", node, "--source", "proc", "--interval", "1s"])
            .arg("--proc-path")
            .arg(&table)
            .args(["--listen", &addr])
            .env("KUBECONFIG", &kubeconfig)
            .env("LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display())),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run netcost: {e}"));
        Agent {
            child,
            metrics: format!("http://{addr}/metrics"),
            addr,
            log,
            table,
        }
    }

    /// Replaces the conntrack table with `lines`, atomically (the agent never reads half a file).
    pub fn write_table(&self, lines: &[String]) {
        let next = self.table.with_extension("next");
        std::fs::write(&next, lines.join("\n") + "\n")
            .and_then(|()| std::fs::rename(&next, &self.table))
            .unwrap_or_else(|e| panic!("{}: {e}", self.table.display()));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn scrape(&self) -> Option<String> {
        ureq::get(&self.metrics)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
    }

    /// Waits for a scrape in which `ok` holds and returns it.
    pub fn wait_for(&mut self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + FOLLOW;
        let mut last = String::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the agent exited ({status}):\n{}", self.log());
            }
            if let Some(text) = self.scrape() {
                if ok(&text) {
                    return text;
                }
                last = text;
            }
            assert!(
                Instant::now() < deadline,
                "no scrape where {what} within {FOLLOW:?}; pods and watch metrics of the last:\n{}\nlog:\n{}",
                interesting(&last),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn interesting(text: &str) -> String {
    text.lines()
        .filter(|l| {
            l.starts_with("netcost_pod_info")
                || l.starts_with("netcost_kubernetes")
                || l.starts_with("kubecost_pod_network")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One TCP connection of a conntrack table in `/proc/net/nf_conntrack` format: `sent` bytes from
/// `src` to `dst`, `received` back.
pub fn tcp_flow(src: &str, dst: &str, sport: u16, sent: u64, received: u64) -> String {
    format!(
        "ipv4     2 tcp      6 431999 ESTABLISHED src={src} dst={dst} sport={sport} dport=8080 \
         packets=1 bytes={sent} src={dst} dst={src} sport=8080 dport={sport} packets=1 \
         bytes={received} [ASSURED] mark=0 zone=0 use=2"
    )
}

/// The value of the series a scrape line starts with (`name{labels}`).
pub fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}
