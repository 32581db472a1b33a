//! A three-node, two-region test cluster made of network namespaces, and its agents.
//!
//! ```text
//!                         fabric (bridge br0 192.168.50.254/24, fd00:50::fe/64; routes to internet)
//!        ┌──────────────────┬───────────┴───────┬───────────────────┐
//!    node-a1              node-b1             node-c2             internet
//!    zone-a/region-1      zone-b/region-1     zone-c/region-2     203.0.113.10
//!    192.168.50.1         192.168.50.2        192.168.50.3        (not in the inventory)
//!    10.1.1.0/24          10.1.2.0/24         10.1.3.0/24
//!    fd00:1:1::/64        fd00:1:2::/64       fd00:1:3::/64
//!    ├ web-a .11          ├ web-b .11         └ cli-c .11
//!    └ cli-a .12          └ cli-b .12
//! ```
//!
//! Nodes reach each other's pod CIDRs directly over the fabric (host-gw style routes) and masquerade
//! pod traffic to anything outside the cluster. Pods sit behind routed veth pairs (no bridge on
//! the node), so every pod packet crosses the node's forward hook and its conntrack table.
//! node-c2 DNATs the Service ClusterIP 10.96.0.10:80 to web-a:8080, as kube-proxy does on the
//! client's node; node-b1 DNATs its NodePort 30080 to web-b:8080 and keeps the client's address,
//! as for `externalTrafficPolicy: Local`. node-a1 has the `Cluster` policy's shapes, which SNAT
//! to the node: its NodePort 30081 to web-b on node-b1, its NodePort 30082 to its own web-a, and
//! the ClusterIP 10.96.0.20:80 to web-a, which web-a reaches itself through (hairpin).
//!
//! Every namespace name starts with `nce2e-<pid>-<n>-`, so parallel tests and leftovers of killed
//! runs never clash. [`Cluster`]'s `Drop` kills its agents and deletes its namespaces, also when a
//! test panics.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::metrics::{self, Metrics};
use super::netns::{run, run_in, run_with_stdin, try_run_in};
use super::traffic::TcpFlow;

/// Port every agent listens on, inside its node's namespace.
pub const AGENT_PORT: u16 = 9301;
/// The one internet host; it only exists inside the test's own `internet` namespace.
pub const INTERNET_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The Service ClusterIP that node-c2 DNATs to web-a:8080.
pub const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The Service port behind [`CLUSTER_IP`].
pub const CLUSTER_IP_PORT: u16 = 80;
/// The NodePort that node-b1 DNATs to web-b:8080.
pub const NODE_PORT: u16 = 30080;
/// The port that the Service and the NodePort forward to.
pub const BACKEND_PORT: u16 = 8080;
/// The NodePort that node-a1 DNATs to web-b:8080 on node-b1 and SNATs to its own address.
pub const NODE_PORT_TO_ANOTHER_NODE: u16 = 30081;
/// The NodePort that node-a1 DNATs to its own web-a:8080 and SNATs to its own address.
pub const NODE_PORT_TO_THIS_NODE: u16 = 30082;
/// The ClusterIP that node-a1 DNATs to web-a:8080, masquerading, so web-a can reach itself.
pub const HAIRPIN_CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

/// A node of the test cluster.
#[derive(Debug)]
pub struct Node {
    /// Kubernetes node name.
    pub name: &'static str,
    /// `topology.kubernetes.io/zone`.
    pub zone: &'static str,
    /// `topology.kubernetes.io/region`.
    pub region: &'static str,
    /// Numbers the node's addresses: 192.168.50.N, fd00:50::N, 10.1.N.0/24, fd00:1:N::/64.
    index: u8,
}

impl Node {
    /// The node's InternalIP.
    pub fn ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 50, self.index)
    }

    /// The node's IPv6 InternalIP.
    pub fn ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x50, 0, 0, 0, 0, 0, self.index.into())
    }

    fn pod_cidr_v4(&self) -> String {
        format!("10.1.{}.0/24", self.index)
    }

    fn pod_cidr_v6(&self) -> String {
        format!("fd00:1:{}::/64", self.index)
    }
}

/// The nodes, in a fixed order.
pub const NODES: [Node; 3] = [
    Node {
        name: "node-a1",
        zone: "zone-a",
        region: "region-1",
        index: 1,
    },
    Node {
        name: "node-b1",
        zone: "zone-b",
        region: "region-1",
        index: 2,
    },
    Node {
        name: "node-c2",
        zone: "zone-c",
        region: "region-2",
        index: 3,
    },
];

/// A dual-stack pod of the test cluster.
#[derive(Debug)]
pub struct Pod {
    /// Pod name; also names its network namespace.
    pub name: &'static str,
    /// Kubernetes namespace.
    pub namespace: &'static str,
    /// The node it runs on.
    pub node: &'static str,
    host: u8,
}

impl Pod {
    fn node_index(&self) -> u8 {
        node(self.node).index
    }

    /// The pod's IPv4 address.
    pub fn ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 1, self.node_index(), self.host)
    }

    /// The pod's IPv6 address.
    pub fn ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::new(
            0xfd00,
            1,
            self.node_index().into(),
            0,
            0,
            0,
            0,
            self.host.into(),
        )
    }

    /// The pod's uid in the inventory.
    pub fn uid(&self) -> String {
        format!(
            "00000000-0000-4000-8000-{:06x}{:06x}",
            self.node_index(),
            self.host
        )
    }
}

/// The pods, in a fixed order.
pub const PODS: [Pod; 5] = [
    Pod {
        name: "web-a",
        namespace: "shop",
        node: "node-a1",
        host: 11,
    },
    Pod {
        name: "cli-a",
        namespace: "shop",
        node: "node-a1",
        host: 12,
    },
    Pod {
        name: "web-b",
        namespace: "shop",
        node: "node-b1",
        host: 11,
    },
    Pod {
        name: "cli-b",
        namespace: "batch",
        node: "node-b1",
        host: 12,
    },
    Pod {
        name: "cli-c",
        namespace: "batch",
        node: "node-c2",
        host: 11,
    },
];

/// The one hostNetwork pod: it runs on node-a1 and shares its addresses. Its processes are put in
/// a cgroup named as kubelet names one ([`Cluster::host_network_cgroup`]), so that the agent
/// can tell its sockets from the node's.
pub const HOST_NETWORK_POD: Pod = Pod {
    name: "ingress-a",
    namespace: "edge",
    node: "node-a1",
    host: 0xfe,
};

/// Looks a node up by name.
pub fn node(name: &str) -> &'static Node {
    NODES
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

/// Looks a pod up by name, the hostNetwork pod too.
pub fn pod(name: &str) -> &'static Pod {
    PODS.iter()
        .chain([&HOST_NETWORK_POD])
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no pod {name}"))
}

/// How the agents of a cluster run.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// `--interval`.
    pub interval: Duration,
    /// `--source`: `netlink` or `proc`.
    pub source: &'static str,
    /// More agent flags, e.g. `--cloud-ranges aws=FILE`; `{node}` is replaced by the node's name.
    pub extra_args: Vec<String>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            interval: Duration::from_secs(1),
            source: "netlink",
            extra_args: Vec::new(),
        }
    }
}

/// One `netcost agent` process and where its output goes.
struct Agent {
    node: &'static str,
    child: Option<Child>,
    log: PathBuf,
    args: Vec<String>,
}

/// The test cluster: namespaces, addresses, rules, and (once started) one agent per node.
pub struct Cluster {
    prefix: String,
    /// Holds the inventory, config, agent logs and state files.
    pub dir: PathBuf,
    namespaces: Vec<String>,
    agents: Vec<Agent>,
    options: AgentOptions,
    /// Cgroups this cluster made, deepest last.
    cgroups: Vec<PathBuf>,
    /// Where this cluster mounted the cgroup2 hierarchy for its agents, if it did.
    cgroup_mount: Option<PathBuf>,
}

impl Cluster {
    /// Builds the whole topology for the test `case`; no agent runs yet.
    pub fn build(case: &str) -> Cluster {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        remove_leftovers_of_dead_runs();
        let prefix = format!(
            "nce2e-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("{prefix}-{case}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the test directory");
        let mut cluster = Cluster {
            prefix,
            dir,
            namespaces: Vec::new(),
            agents: Vec::new(),
            options: AgentOptions::default(),
            cgroups: Vec::new(),
            cgroup_mount: None,
        };
        cluster.build_namespaces();
        cluster.build_fabric();
        for node in &NODES {
            cluster.build_node(node);
        }
        for pod in &PODS {
            cluster.build_pod(pod);
        }
        cluster.build_internet();
        // Accounting is per namespace and only applies to flows created while it is on, so turn
        // it on everywhere before any traffic (the agent does it too, but only once it runs).
        for ns in NODES
            .iter()
            .map(|n| cluster.node_ns(n.name))
            .chain([cluster.fabric_ns()])
        {
            sysctl(&ns, &[("net.netfilter.nf_conntrack_acct", "1")]);
        }
        fs::write(cluster.dir.join("inventory.yaml"), inventory()).expect("write inventory");
        fs::write(cluster.dir.join("config.yaml"), CLASSIFICATION_CONFIG).expect("write config");
        cluster
    }

    /// Makes the cgroup of [`HOST_NETWORK_POD`]'s container as kubelet's systemd driver names
    /// it, under this run's own directory of the cgroup2 hierarchy at `/sys/fs/cgroup/unified`
    /// (or `/sys/fs/cgroup` on a cgroup2-only host): `<run>/kubepods.slice/
    /// kubepods-besteffort.slice/kubepods-besteffort-pod<uid with underscores>.slice/
    /// cri-containerd-<id>.scope`. Returns the container's directory; `Drop` removes them all.
    ///
    /// The agents get the hierarchy mounted again in the test's directory (`--cgroup-root`), as
    /// the DaemonSet mounts the host's: `ip netns exec` gives them a /sys of their own, without
    /// the host's cgroup mounts. Call it before [`Cluster::start_agents`].
    pub fn host_network_cgroup(&mut self) -> PathBuf {
        assert!(
            self.agents.is_empty(),
            "make the cgroup before the agents start"
        );
        let mount_point = self.dir.join("cgroup2");
        fs::create_dir_all(&mount_point).expect("create the cgroup2 mount point");
        run(
            "mount",
            &["-t", "cgroup2", "none", &mount_point.to_string_lossy()],
        );
        self.cgroup_mount = Some(mount_point);
        let unified = PathBuf::from("/sys/fs/cgroup/unified");
        let mount = if unified.join("cgroup.procs").exists() {
            unified
        } else {
            PathBuf::from("/sys/fs/cgroup")
        };
        let uid = HOST_NETWORK_POD.uid().replace('-', "_");
        let mut dir = mount.join(&self.prefix);
        for level in [
            "kubepods.slice".to_owned(),
            "kubepods-besteffort.slice".to_owned(),
            format!("kubepods-besteffort-pod{uid}.slice"),
            format!("cri-containerd-{:x}.scope", std::process::id()),
        ] {
            if self.cgroups.is_empty() {
                let _ = fs::create_dir(&dir);
                self.cgroups.push(dir.clone());
            }
            dir = dir.join(level);
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("create cgroup {}: {e}", dir.display()));
            self.cgroups.push(dir.clone());
        }
        dir
    }

    /// The namespace of a node.
    pub fn node_ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// A TCP flow from pod `client` to pod `server` on the backend port: 3 MiB up and 1 MiB
    /// down, so that swapped directions show.
    pub fn pod_to_pod(&self, client: &str, server: &str, v6: bool) -> TcpFlow {
        const MIB: u64 = 1 << 20;
        let addr = pod_addr(server, v6, BACKEND_PORT);
        TcpFlow {
            client_ns: self.pod_ns(client),
            server_ns: self.pod_ns(server),
            listen: addr,
            connect: addr,
            client_sends: 3 * MIB,
            server_sends: MIB,
            client_pace: None,
            client_pause: None,
        }
    }

    /// The namespace of a pod.
    pub fn pod_ns(&self, pod: &str) -> String {
        format!("{}-{pod}", self.prefix)
    }

    /// The namespace of the internet host.
    pub fn internet_ns(&self) -> String {
        format!("{}-internet", self.prefix)
    }

    fn fabric_ns(&self) -> String {
        format!("{}-fabric", self.prefix)
    }

    fn build_namespaces(&mut self) {
        let mut names = vec![self.fabric_ns(), self.internet_ns()];
        names.extend(NODES.iter().map(|n| self.node_ns(n.name)));
        names.extend(PODS.iter().map(|p| self.pod_ns(p.name)));
        for ns in names {
            run("ip", &["netns", "add", &ns]);
            self.namespaces.push(ns.clone());
            // Addresses must be usable at once: no duplicate address detection.
            sysctl(
                &ns,
                &[
                    ("net.ipv6.conf.all.accept_dad", "0"),
                    ("net.ipv6.conf.default.accept_dad", "0"),
                    ("net.ipv4.conf.all.rp_filter", "0"),
                    ("net.ipv4.conf.default.rp_filter", "0"),
                ],
            );
            ip(&ns, &["link", "set", "lo", "up"]);
        }
    }

    fn build_fabric(&self) {
        let fabric = self.fabric_ns();
        sysctl(&fabric, FORWARDING);
        ip(&fabric, &["link", "add", "br0", "type", "bridge"]);
        ip(&fabric, &["addr", "add", "192.168.50.254/24", "dev", "br0"]);
        ip(
            &fabric,
            &["addr", "add", "fd00:50::fe/64", "dev", "br0", "nodad"],
        );
        ip(&fabric, &["link", "set", "br0", "up"]);
        // Conntrack only runs in a namespace whose rules need it.
        nft(
            &fabric,
            "table inet nce2e {\n\
             chain forward { type filter hook forward priority filter; policy accept; ct state established counter; }\n\
             }\n",
        );
    }

    fn build_node(&self, node: &Node) {
        let ns = self.node_ns(node.name);
        let fabric = self.fabric_ns();
        let port = format!("n{}", node.index);
        sysctl(&ns, FORWARDING);
        ip(
            &fabric,
            &[
                "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        );
        ip(&fabric, &["link", "set", &port, "master", "br0", "up"]);
        ip(&ns, &["link", "set", "eth0", "up"]);
        ip(
            &ns,
            &["addr", "add", &format!("{}/24", node.ipv4()), "dev", "eth0"],
        );
        ip(
            &ns,
            &[
                "addr",
                "add",
                &format!("{}/64", node.ipv6()),
                "dev",
                "eth0",
                "nodad",
            ],
        );
        ip(&ns, &["route", "add", "default", "via", "192.168.50.254"]);
        ip(
            &ns,
            &["-6", "route", "add", "default", "via", "fd00:50::fe"],
        );
        for other in NODES.iter().filter(|o| o.index != node.index) {
            ip(
                &ns,
                &[
                    "route",
                    "add",
                    &other.pod_cidr_v4(),
                    "via",
                    &other.ipv4().to_string(),
                ],
            );
            ip(
                &ns,
                &[
                    "-6",
                    "route",
                    "add",
                    &other.pod_cidr_v6(),
                    "via",
                    &other.ipv6().to_string(),
                ],
            );
        }
        nft(&ns, &node_ruleset(node));
    }

    fn build_pod(&self, pod: &Pod) {
        let ns = self.pod_ns(pod.name);
        let node_ns = self.node_ns(pod.node);
        let host_side = format!("v-{}", pod.name);
        let gateway_v4 = format!("10.1.{}.1", pod.node_index());
        ip(
            &node_ns,
            &[
                "link", "add", &host_side, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        );
        // Routed, not bridged: the node owns the gateway address on every pod link.
        ip(
            &node_ns,
            &[
                "addr",
                "add",
                &format!("{gateway_v4}/32"),
                "dev",
                &host_side,
            ],
        );
        ip(
            &node_ns,
            &["addr", "add", "fe80::1/64", "dev", &host_side, "nodad"],
        );
        ip(&node_ns, &["link", "set", &host_side, "up"]);
        ip(
            &node_ns,
            &[
                "route",
                "add",
                &format!("{}/32", pod.ipv4()),
                "dev",
                &host_side,
            ],
        );
        ip(
            &node_ns,
            &[
                "-6",
                "route",
                "add",
                &format!("{}/128", pod.ipv6()),
                "dev",
                &host_side,
            ],
        );
        ip(&ns, &["link", "set", "eth0", "up"]);
        ip(
            &ns,
            &["addr", "add", &format!("{}/32", pod.ipv4()), "dev", "eth0"],
        );
        ip(
            &ns,
            &[
                "addr",
                "add",
                &format!("{}/128", pod.ipv6()),
                "dev",
                "eth0",
                "nodad",
            ],
        );
        ip(&ns, &["route", "add", &gateway_v4, "dev", "eth0"]);
        ip(
            &ns,
            &["route", "add", "default", "via", &gateway_v4, "dev", "eth0"],
        );
        ip(
            &ns,
            &[
                "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0",
            ],
        );
    }

    fn build_internet(&self) {
        let ns = self.internet_ns();
        let fabric = self.fabric_ns();
        ip(
            &fabric,
            &[
                "link", "add", "inet0", "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        );
        ip(&fabric, &["addr", "add", "203.0.113.1/24", "dev", "inet0"]);
        ip(&fabric, &["link", "set", "inet0", "up"]);
        ip(&ns, &["link", "set", "eth0", "up"]);
        ip(
            &ns,
            &["addr", "add", &format!("{INTERNET_HOST}/24"), "dev", "eth0"],
        );
        ip(&ns, &["route", "add", "default", "via", "203.0.113.1"]);
    }

    /// Gives the internet host one more address, routed to it by the fabric: for example one inside
    /// a cloud provider's published range. It exists only inside the test's own namespaces.
    #[allow(
        dead_code,
        reason = "only cloud_e2e.rs uses it, and every test binary compiles this module"
    )]
    pub fn add_internet_address(&self, addr: Ipv4Addr) {
        ip(
            &self.internet_ns(),
            &["addr", "add", &format!("{addr}/32"), "dev", "eth0"],
        );
        ip(
            &self.fabric_ns(),
            &[
                "route",
                "add",
                &format!("{addr}/32"),
                "via",
                &INTERNET_HOST.to_string(),
                "dev",
                "inet0",
            ],
        );
    }

    /// Sets sysctls in a node's namespace, e.g. conntrack timeouts.
    pub fn node_sysctl(&self, node: &str, settings: &[(&str, &str)]) {
        sysctl(&self.node_ns(node), settings);
    }

    /// Starts one agent per node and waits until all are ready.
    pub fn start_agents(&mut self, binary: &str, options: AgentOptions) {
        assert!(self.agents.is_empty(), "agents already started");
        self.options = options;
        let interval = format!("{}ms", self.options.interval.as_millis());
        for node in &NODES {
            let args: Vec<String> = vec![
                "netns".to_owned(),
                "exec".to_owned(),
                self.node_ns(node.name),
                binary.to_owned(),
                "agent".to_owned(),
                "--node-name".to_owned(),
                node.name.to_owned(),
                "--inventory".to_owned(),
                self.path("inventory.yaml"),
                "--config".to_owned(),
                self.path("config.yaml"),
                "--listen".to_owned(),
                format!("0.0.0.0:{AGENT_PORT}"),
                "--interval".to_owned(),
                interval.clone(),
                "--source".to_owned(),
                self.options.source.to_owned(),
                "--state-file".to_owned(),
                self.path(&format!("{}.state", node.name)),
            ]
            .into_iter()
            .chain(
                self.options
                    .extra_args
                    .iter()
                    .map(|a| a.replace("{node}", node.name)),
            )
            .chain(
                self.cgroup_mount
                    .iter()
                    .flat_map(|m| ["--cgroup-root".to_owned(), m.to_string_lossy().into_owned()]),
            )
            .collect();
            let log = self.dir.join(format!("{}.log", node.name));
            self.agents.push(Agent {
                node: node.name,
                child: None,
                log,
                args,
            });
            self.spawn_agent(node.name);
        }
        for node in &NODES {
            self.wait_ready(node.name);
        }
    }

    /// The agents' dump interval.
    pub fn interval(&self) -> Duration {
        self.options.interval
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    fn agent_mut(&mut self, node: &str) -> &mut Agent {
        self.agents
            .iter_mut()
            .find(|a| a.node == node)
            .unwrap_or_else(|| panic!("no agent on {node}"))
    }

    fn spawn_agent(&mut self, node: &str) {
        let agent = self.agent_mut(node);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&agent.log)
            .expect("open the agent log");
        let child = Command::new("ip")
            .args(&agent.args)
            .env("LOG_LEVEL", "debug")
            .env("RUST_BACKTRACE", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start the agent");
        agent.child = Some(child);
    }

    /// Waits for `GET /readyz` to answer 200 on the agent of `node`.
    pub fn wait_ready(&mut self, node: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ns = self.node_ns(node);
        loop {
            if let Some(status) = self
                .agent_mut(node)
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the agent on {node} exited before it was ready ({status})\n{}",
                    self.diagnostics(node)
                );
            }
            if let Ok((200, _)) = metrics::http_get(&ns, AGENT_PORT, "/readyz") {
                // A ready agent is also healthy: its pipeline thread is beating.
                match metrics::http_get(&ns, AGENT_PORT, "/healthz") {
                    Ok((200, _)) => return,
                    other => panic!("the agent on {node} is ready but not healthy: {other:?}"),
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "the agent on {node} was not ready within 20 s\n{}",
                    self.diagnostics(node)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGKILL to the agent of `node` and reaps it.
    pub fn kill_agent(&mut self, node: &str) {
        let agent = self.agent_mut(node);
        let mut child = agent.child.take().expect("the agent runs");
        child.kill().expect("SIGKILL the agent");
        child.wait().expect("reap the agent");
    }

    /// Starts the agent of `node` again with the same flags and state file; waits until ready.
    pub fn restart_agent(&mut self, node: &str) {
        assert!(self.agent_mut(node).child.is_none(), "kill it first");
        self.spawn_agent(node);
        self.wait_ready(node);
    }

    /// Scrapes `/metrics` of the agent on `node`.
    pub fn scrape(&self, node: &str) -> Result<Metrics, String> {
        let (status, body) = metrics::http_get(&self.node_ns(node), AGENT_PORT, "/metrics")
            .map_err(|e| format!("GET /metrics on {node}: {e}"))?;
        if status != 200 {
            return Err(format!("GET /metrics on {node}: status {status}\n{body}"));
        }
        Metrics::parse(&body)
    }

    /// The agent's log and the node's conntrack table, for failure messages.
    pub fn diagnostics(&self, node: &str) -> String {
        let mut out = String::new();
        if let Some(agent) = self.agents.iter().find(|a| a.node == node) {
            let log = fs::read_to_string(&agent.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let _ = writeln!(
                out,
                "---- agent log of {node} ({}), last {} lines ----",
                agent.log.display(),
                tail.len()
            );
            for line in tail.iter().rev() {
                let _ = writeln!(out, "{line}");
            }
        }
        let table = try_run_in(&self.node_ns(node), "conntrack", &["-L", "-o", "extended"]);
        let _ = writeln!(out, "---- conntrack -L -o extended in {node} ----\n{table}");
        out
    }

    /// The conntrack table of a node's namespace.
    pub fn conntrack(&self, node: &str, args: &[&str]) -> String {
        let mut full = vec!["-L", "-o", "extended"];
        full.extend_from_slice(args);
        try_run_in(&self.node_ns(node), "conntrack", &full)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            if let Some(mut child) = agent.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // The helpers that lived in them have exited (their tests waited for them).
        for cgroup in self.cgroups.iter().rev() {
            let _ = fs::remove_dir(cgroup);
        }
        if let Some(mount) = &self.cgroup_mount {
            let _ = Command::new("umount").arg(mount).status();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        if std::thread::panicking() {
            eprintln!("kept agent logs and state in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Deletes namespaces that earlier runs, since killed, left behind. Only our own prefix, and only
/// when the process that made them is gone.
fn remove_leftovers_of_dead_runs() {
    let Ok(entries) = fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("nce2e-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

const FORWARDING: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv6.conf.default.forwarding", "1"),
];

fn ip(ns: &str, args: &[&str]) {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    run("ip", &full);
}

fn nft(ns: &str, ruleset: &str) {
    run_with_stdin(
        "ip",
        &["netns", "exec", ns, "nft", "-f", "-"],
        Some(ruleset),
    );
}

fn sysctl(ns: &str, settings: &[(&str, &str)]) {
    let pairs: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["-q", "-w"];
    args.extend(pairs.iter().map(String::as_str));
    run_in(ns, "sysctl", &args);
}

/// What kube-proxy and the CNI would install on a node: masquerade to outside the cluster, plus
/// this node's DNAT rules.
fn node_ruleset(node: &Node) -> String {
    let web_a = pod("web-a");
    let web_b = pod("web-b");
    // Like kube-proxy, mark what the `Cluster` policy masquerades in prerouting (0x4000) and
    // masquerade it on the way out.
    let dnat = match node.name {
        "node-c2" => format!(
            "ip daddr {CLUSTER_IP} tcp dport {CLUSTER_IP_PORT} dnat ip to {}:{BACKEND_PORT}",
            web_a.ipv4()
        ),
        "node-b1" => format!(
            "ip daddr {} tcp dport {NODE_PORT} dnat ip to {}:{BACKEND_PORT}",
            node.ipv4(),
            web_b.ipv4()
        ),
        "node-a1" => format!(
            "ip daddr {me} tcp dport {NODE_PORT_TO_ANOTHER_NODE} meta mark set 0x4000 dnat ip to {b}:{BACKEND_PORT}\n\
             ip daddr {me} tcp dport {NODE_PORT_TO_THIS_NODE} meta mark set 0x4000 dnat ip to {a}:{BACKEND_PORT}\n\
             ip daddr {HAIRPIN_CLUSTER_IP} tcp dport {CLUSTER_IP_PORT} meta mark set 0x4000 dnat ip to {a}:{BACKEND_PORT}",
            me = node.ipv4(),
            a = web_a.ipv4(),
            b = web_b.ipv4(),
        ),
        _ => String::new(),
    };
    format!(
        "table inet nce2e {{\n\
         chain prerouting {{ type nat hook prerouting priority dstnat; policy accept;\n{dnat}\n}}\n\
         chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n\
           meta mark 0x4000 masquerade\n\
           oifname \"eth0\" ip saddr {v4} ip daddr != {{ 10.0.0.0/8, 192.168.50.0/24 }} masquerade\n\
           oifname \"eth0\" ip6 saddr {v6} ip6 daddr != {{ fd00::/8 }} masquerade\n\
         }}\n\
         chain forward {{ type filter hook forward priority filter; policy accept; ct state invalid counter; }}\n\
         }}\n",
        v4 = node.pod_cidr_v4(),
        v6 = node.pod_cidr_v6(),
    )
}

/// Kubecost's network-costs config, with its default `in-zone` list that holds 10.0.0.0/8, and
/// netcost's `nat-gateway` block for node-a1.
const CLASSIFICATION_CONFIG: &str = "\
destinations:
  in-zone:
    - \"127.0.0.0/8\"
    - \"169.254.0.0/16\"
    - \"10.0.0.0/8\"
    - \"172.16.0.0/12\"
    - \"192.168.0.0/16\"
  in-region: []
  cross-region: []
  internet: []
  direct-classification: []
services:
  amazon-web-services: false
  google-cloud-services: false
  azure-cloud-services: false
# node-a1 sits in a private subnet whose route to public addresses is a NAT gateway.
nat-gateway:
  node-subnets: [\"192.168.50.1/32\"]
";

/// The inventory of the whole test cluster, as `kubectl get nodes,pods,services -A -o yaml` would
/// print it. The internet host is not in it.
fn inventory() -> String {
    let mut out = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for node in &NODES {
        let _ = write!(
            out,
            "- apiVersion: v1
  kind: Node
  metadata:
    name: {name}
    labels:
      kubernetes.io/hostname: {name}
      topology.kubernetes.io/zone: {zone}
      topology.kubernetes.io/region: {region}
  spec:
    podCIDR: \"{cidr4}\"
    podCIDRs: [\"{cidr4}\", \"{cidr6}\"]
  status:
    addresses:
      - {{type: InternalIP, address: \"{ip4}\"}}
      - {{type: InternalIP, address: \"{ip6}\"}}
      - {{type: Hostname, address: {name}}}
",
            name = node.name,
            zone = node.zone,
            region = node.region,
            cidr4 = node.pod_cidr_v4(),
            cidr6 = node.pod_cidr_v6(),
            ip4 = node.ipv4(),
            ip6 = node.ipv6(),
        );
    }
    // The hostNetwork pod's addresses are its node's.
    let pods = PODS.iter().map(|p| (p, false, p.ipv4(), p.ipv6())).chain([(
        &HOST_NETWORK_POD,
        true,
        { node(HOST_NETWORK_POD.node).ipv4() },
        node(HOST_NETWORK_POD.node).ipv6(),
    )]);
    for (pod, host_network, ip4, ip6) in pods {
        let _ = write!(
            out,
            "- apiVersion: v1
  kind: Pod
  metadata:
    name: {name}
    namespace: {namespace}
    uid: \"{uid}\"
    labels: {{app: {name}}}
  spec:
    nodeName: {node}
    hostNetwork: {host_network}
    containers: [{{name: main, image: \"example.invalid/{name}:1\"}}]
  status:
    phase: Running
    podIP: \"{ip4}\"
    podIPs: [{{ip: \"{ip4}\"}}, {{ip: \"{ip6}\"}}]
    hostIP: \"{host}\"
",
            name = pod.name,
            namespace = pod.namespace,
            uid = pod.uid(),
            node = pod.node,
            host = node(pod.node).ipv4(),
        );
    }
    let _ = write!(
        out,
        "- apiVersion: v1
  kind: Service
  metadata: {{name: web-a, namespace: shop}}
  spec:
    type: ClusterIP
    clusterIP: \"{CLUSTER_IP}\"
    clusterIPs: [\"{CLUSTER_IP}\"]
    selector: {{app: web-a}}
    ports: [{{port: {CLUSTER_IP_PORT}, targetPort: {BACKEND_PORT}, protocol: TCP}}]
- apiVersion: v1
  kind: Service
  metadata: {{name: web-b-public, namespace: shop}}
  spec:
    type: NodePort
    clusterIP: \"10.96.0.20\"
    clusterIPs: [\"10.96.0.20\"]
    selector: {{app: web-b}}
    ports: [{{port: 80, targetPort: {BACKEND_PORT}, nodePort: {NODE_PORT}, protocol: TCP}}]
"
    );
    out
}

/// A socket address of a pod, by family.
pub fn pod_addr(pod_name: &str, v6: bool, port: u16) -> SocketAddr {
    let pod = pod(pod_name);
    let ip: IpAddr = if v6 {
        pod.ipv6().into()
    } else {
        pod.ipv4().into()
    };
    SocketAddr::new(ip, port)
}
