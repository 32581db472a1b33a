//! A real Kubernetes control plane for the tests, in the manner of controller-runtime's envtest:
//! etcd and kube-apiserver (built from their published Go modules by
//! `scripts/install-test-deps.sh`) on loopback, each cluster with its own ports and temporary
//! directory, RBAC enforced, and an admin token that is the only credential handed out. No
//! controller-manager, scheduler or kubelet runs: the tests play their parts through the API
//! (a pod's node is set at creation, its status through the status subresource, and a deletion
//! is confirmed with a zero grace period as the kubelet would).
//!
//! The processes are killed and the directory removed when the [`RealCluster`] is dropped, a
//! failed test's included.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// How long a starting etcd or kube-apiserver may take before the test gives up: generous,
/// since the machine's two cores are shared with the rest of the test suite.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A program built by `scripts/install-test-deps.sh`: `$NETCOST_TEST_BIN`, `/opt/netcost-test-bin`
/// by default.
pub fn test_bin(program: &str) -> PathBuf {
    let dir = std::env::var_os("NETCOST_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/netcost-test-bin"));
    let path = dir.join(program);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/install-test-deps.sh, which builds etcd, kube-apiserver and \
         helm from their Go modules (set NETCOST_TEST_BIN to use another directory)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

fn run(program: &str, args: &[&str], dir: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A random hex string from the kernel, for tokens.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .unwrap_or_else(|e| panic!("/dev/urandom: {e}"));
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The CA, the API server's serving certificate (for 127.0.0.1) and the service-account key pair.
fn make_certs(dir: &Path) {
    let openssl = "openssl";
    run(
        openssl,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=netcost-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        dir,
    );
    run(
        openssl,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=kube-apiserver",
            "-keyout",
            "apiserver.key",
            "-out",
            "apiserver.csr",
        ],
        dir,
    );
    std::fs::write(
        dir.join("apiserver.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap_or_else(|e| panic!("apiserver.ext: {e}"));
    run(
        openssl,
        &[
            "x509",
            "-req",
            "-in",
            "apiserver.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "apiserver.ext",
            "-out",
            "apiserver.crt",
        ],
        dir,
    );
    run(openssl, &["genrsa", "-out", "sa.key", "2048"], dir);
    run(
        openssl,
        &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
        dir,
    );
}

/// etcd and kube-apiserver on loopback, with an admin client.
pub struct RealCluster {
    dir: PathBuf,
    etcd: Child,
    apiserver: Option<Child>,
    apiserver_args: Vec<String>,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    runtime: tokio::runtime::Runtime,
    admin: kube::Client,
}

impl RealCluster {
    /// Starts etcd and kube-apiserver and waits until the API server's `/readyz` says ready.
    pub fn start() -> RealCluster {
        static N: AtomicUsize = AtomicUsize::new(0);
        let etcd_bin = test_bin("etcd");
        // Both looked for now, so a missing one is reported before anything starts.
        test_bin("kube-apiserver");
        let dir = std::env::temp_dir().join(format!(
            "netcost-apiserver-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        make_certs(&dir);
        let admin_token = random_hex(16);
        // system:masters is the one group RBAC never asks about: the test's own credential.
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{admin_token},netcost-test-admin,netcost-test-admin,system:masters\n"),
        )
        .unwrap_or_else(|e| panic!("tokens.csv: {e}"));

        let (client_port, peer_port) = (free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_log = dir.join("etcd.log");
        let etcd = Command::new(&etcd_bin)
            .args([
                "--name=test",
                &format!("--data-dir={}", dir.join("etcd").display()),
                &format!("--listen-client-urls={etcd_url}"),
                &format!("--advertise-client-urls={etcd_url}"),
                &format!("--listen-peer-urls={peer_url}"),
                &format!("--initial-advertise-peer-urls={peer_url}"),
                &format!("--initial-cluster=test={peer_url}"),
                // A test's data need not survive a power cut; fsync would make etcd the slowest
                // part of the suite.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ])
            .stdout(Stdio::null())
            .stderr(log_file(&etcd_log))
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", etcd_bin.display()));

        let port = free_port();
        let d = |name: &str| dir.join(name).display().to_string();
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", d("certs")),
            format!("--tls-cert-file={}", d("apiserver.crt")),
            format!("--tls-private-key-file={}", d("apiserver.key")),
            format!("--client-ca-file={}", d("ca.crt")),
            format!("--token-auth-file={}", d("tokens.csv")),
            "--authorization-mode=RBAC".into(),
            format!("--service-account-key-file={}", d("sa.pub")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--allow-privileged=true".into(),
        ];
        let url = format!("https://127.0.0.1:{port}");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let kubeconfig = write_kubeconfig(&dir, &url, "admin", &admin_token);
        let admin = client_from(&runtime, &kubeconfig);
        let mut cluster = RealCluster {
            dir,
            etcd,
            apiserver: None,
            apiserver_args,
            url,
            runtime,
            admin,
        };
        cluster.wait_for_etcd(&etcd_log);
        cluster.start_apiserver();
        cluster
    }

    fn wait_for_etcd(&mut self, log: &Path) {
        let addr = self
            .apiserver_args
            .iter()
            .find_map(|a| a.strip_prefix("--etcd-servers=http://"))
            .unwrap_or_else(|| panic!("no etcd address"))
            .to_owned();
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(&addr).is_err() {
            if let Ok(Some(status)) = self.etcd.try_wait() {
                panic!("etcd exited ({status}):\n{}", tail(log));
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not listen on {addr} within {START_TIMEOUT:?}:\n{}",
                tail(log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts kube-apiserver (again, after [`Self::stop_apiserver`]) and waits for `/readyz`.
    pub fn start_apiserver(&mut self) {
        assert!(
            self.apiserver.is_none(),
            "kube-apiserver is already running"
        );
        let bin = test_bin("kube-apiserver");
        let log = self.dir.join("kube-apiserver.log");
        let child = Command::new(&bin)
            .args(&self.apiserver_args)
            .stdout(Stdio::null())
            .stderr(log_file(&log))
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        self.apiserver = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = self.block_on(async {
                let request = http::Request::get("/readyz")
                    .body(Vec::new())
                    .unwrap_or_else(|e| panic!("{e}"));
                self.admin.request_text(request).await
            });
            match ready {
                Ok(text) if text.trim() == "ok" => return,
                other => {
                    if let Some(Ok(Some(status))) = self.apiserver.as_mut().map(Child::try_wait) {
                        panic!("kube-apiserver exited ({status}):\n{}", tail(&log));
                    }
                    assert!(
                        Instant::now() < deadline,
                        "kube-apiserver not ready within {START_TIMEOUT:?} ({other:?}):\n{}",
                        tail(&log)
                    );
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
    }

    /// Stops kube-apiserver (SIGKILL: no goodbye to its watchers, as in a crash); etcd stays.
    pub fn stop_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Writes a kubeconfig for `token` and returns its path. The token is in a file of its own
    /// (`tokenFile`), which kube re-reads, as in a pod with a projected service-account token.
    pub fn write_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        write_kubeconfig(&self.dir, &self.url, name, token)
    }

    /// A client from a kubeconfig, built in this cluster's runtime.
    pub fn client_from(&self, kubeconfig: &Path) -> kube::Client {
        client_from(&self.runtime, kubeconfig)
    }

    /// The admin kubeconfig (system:masters).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// The admin client (system:masters).
    pub fn admin(&self) -> kube::Client {
        self.admin.clone()
    }

    /// Runs `future` on this cluster's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// This cluster's directory (certificates, logs, kubeconfigs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs the helm CLI as the admin, with its caches in this cluster's directory: its stdout,
    /// or a panic with its stderr.
    pub fn helm(&self, args: &[&str]) -> String {
        let home = self.dir.join("helm");
        let out = Command::new(test_bin("helm"))
            .args(args)
            .env("KUBECONFIG", self.admin_kubeconfig())
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
            .unwrap_or_else(|e| panic!("helm: {e}"));
        assert!(
            out.status.success(),
            "helm {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn write_kubeconfig(dir: &Path, url: &str, name: &str, token: &str) -> PathBuf {
    let token_file = dir.join(format!("{name}.token"));
    std::fs::write(&token_file, token).unwrap_or_else(|e| panic!("{name}.token: {e}"));
    let path = dir.join(format!("{name}.kubeconfig"));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    \
         certificate-authority: {ca}\ncontexts:\n- name: {name}\n  context:\n    cluster: test\n    \
         user: {name}\ncurrent-context: {name}\nusers:\n- name: {name}\n  user:\n    tokenFile: {token}\n",
        ca = dir.join("ca.crt").display(),
        token = token_file.display(),
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// A client from a kubeconfig, built in `runtime` (kube's client spawns its buffer there).
pub fn client_from(runtime: &tokio::runtime::Runtime, kubeconfig: &Path) -> kube::Client {
    runtime.block_on(async {
        let config = Kubeconfig::read_from(kubeconfig).unwrap_or_else(|e| panic!("{e}"));
        let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn log_file(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        self.stop_apiserver();
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
        if std::thread::panicking() {
            eprintln!(
                "kube-apiserver log (tail):\n{}",
                tail(&self.dir.join("kube-apiserver.log"))
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
