//! Tests against the real kernel, in a scratch network namespace per test. They need root, `ip`,
//! `nft` and `conntrack` (conntrack-tools), and run with `--features root-tests`.
//!
//! Each test enters its namespace on a thread of its own (`setns` moves only the calling thread),
//! turns accounting on, loads conntrack with a one-rule nftables ruleset, sends traffic over
//! loopback and checks what the sources report against the bytes it sent. A UDP datagram counts
//! at layer 3: its payload plus 8 bytes of UDP header plus 20 (IPv4) or 40 (IPv6).
#![cfg(feature = "root-tests")]

use std::fs::File;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use netcost_conntrack::{
    Accounting, NetlinkConfig, NetlinkSource, ProcSource, ReliableEvents, ValveSettings,
    ensure_accounting,
};
use netcost_core::flow::{Counters, FlowRecord, FlowSource, ReadStats};
use nix::sched::{CloneFlags, setns};

/// A network namespace that exists for the life of the value, deleted on drop (also when the test
/// panics).
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "netcost-ct-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let netns = Netns { name };
        run("ip", &["-n", &netns.name, "link", "set", "lo", "up"]);
        netns
    }

    /// Loads conntrack in the namespace: the kernel registers its hooks only once a ruleset needs
    /// them.
    fn load_conntrack(&self) {
        let ruleset = "add table inet netcost_test { chain out { type filter hook output priority 0; ct state new accept; }; }";
        self.exec(&["nft", ruleset]);
    }

    /// Runs a command inside the namespace and asserts that it succeeds.
    fn exec(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        run("ip", &full);
    }

    /// Runs `f` on a thread that has entered the namespace.
    fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            let thread = scope.spawn(move || {
                let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
                f()
            });
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// Sysctl and table paths as the current thread (not the process) sees them.
const ACCT: &str = "/proc/sys/net/netfilter/nf_conntrack_acct";
const THREAD_TABLE: &str = "/proc/thread-self/net/nf_conntrack";

/// A UDP exchange on loopback: `requests` datagrams of `request_len` bytes from a client, then
/// `answers` datagrams of `answer_len` bytes back. Returns the client and server addresses.
struct Exchange {
    client: SocketAddr,
    server: SocketAddr,
}

fn udp_exchange(
    loopback: IpAddr,
    (requests, request_len): (usize, usize),
    (answers, answer_len): (usize, usize),
) -> Exchange {
    let server = UdpSocket::bind((loopback, 0)).expect("bind server");
    let client = UdpSocket::bind((loopback, 0)).expect("bind client");
    let (server_addr, client_addr) = (
        server.local_addr().expect("server address"),
        client.local_addr().expect("client address"),
    );
    let mut buf = vec![0u8; 65536];
    for _ in 0..requests {
        client
            .send_to(&vec![b'q'; request_len], server_addr)
            .expect("send request");
        let (n, _) = server.recv_from(&mut buf).expect("receive request");
        assert_eq!(n, request_len);
    }
    for _ in 0..answers {
        server
            .send_to(&vec![b'a'; answer_len], client_addr)
            .expect("send answer");
        let (n, _) = client.recv_from(&mut buf).expect("receive answer");
        assert_eq!(n, answer_len);
    }
    Exchange {
        client: client_addr,
        server: server_addr,
    }
}

/// Layer-3 size of a UDP datagram with `payload` bytes.
fn udp_l3_bytes(loopback: IpAddr, payload: usize) -> u64 {
    let ip_header = if loopback.is_ipv6() { 40 } else { 20 };
    (payload + 8 + ip_header) as u64
}

fn is_exchange(record: &FlowRecord, exchange: &Exchange) -> bool {
    record.original.protocol == 17
        && record.original.src == exchange.client.ip()
        && record.original.src_port == exchange.client.port()
        && record.original.dst_port == exchange.server.port()
}

fn collect(
    read: impl FnOnce(&mut dyn FnMut(&FlowRecord)) -> ReadStats,
) -> (Vec<FlowRecord>, ReadStats) {
    let mut records = Vec::new();
    let stats = read(&mut |r| records.push(*r));
    (records, stats)
}

fn expect_counters(
    record: &FlowRecord,
    loopback: IpAddr,
    requests: (usize, usize),
    answers: (usize, usize),
) {
    assert_eq!(
        record.original_counters,
        Counters {
            packets: requests.0 as u64,
            bytes: requests.0 as u64 * udp_l3_bytes(loopback, requests.1),
        },
        "original direction of {record:?}"
    );
    assert_eq!(
        record.reply_counters,
        Counters {
            packets: answers.0 as u64,
            bytes: answers.0 as u64 * udp_l3_bytes(loopback, answers.1),
        },
        "reply direction of {record:?}"
    );
}

#[test]
fn accounting_is_turned_on_once_in_a_fresh_namespace() {
    let netns = Netns::new();
    netns.inside(|| {
        assert_eq!(std::fs::read_to_string(ACCT).ok().as_deref(), Some("0\n"));
        assert_eq!(
            ensure_accounting(ACCT.as_ref()).ok(),
            Some(Accounting::TurnedOn)
        );
        assert_eq!(
            ensure_accounting(ACCT.as_ref()).ok(),
            Some(Accounting::AlreadyOn)
        );
        assert_eq!(std::fs::read_to_string(ACCT).ok().as_deref(), Some("1\n"));
    });
}

#[test]
fn a_dump_counts_exactly_the_bytes_of_ipv4_and_ipv6_udp_exchanges() {
    let netns = Netns::new();
    netns.load_conntrack();
    netns.inside(|| {
        ensure_accounting(ACCT.as_ref()).expect("accounting on");
        let mut source = NetlinkSource::open().expect("open ctnetlink");
        for loopback in ["127.0.0.1", "::1"] {
            let loopback: IpAddr = loopback.parse().expect("an address");
            let (requests, answers) = ((5, 300), (2, 1000));
            let exchange = udp_exchange(loopback, requests, answers);
            let (records, stats) = collect(|sink| source.dump(sink).expect("dump"));
            assert_eq!(stats.malformed, 0);
            let ours: Vec<_> = records
                .iter()
                .filter(|r| is_exchange(r, &exchange))
                .collect();
            assert_eq!(ours.len(), 1, "{loopback}: {records:#?}");
            expect_counters(ours[0], loopback, requests, answers);
        }
    });
}

#[test]
fn a_deleted_entry_arrives_as_a_destroy_event_with_its_final_counters() {
    let netns = Netns::new();
    netns.load_conntrack();
    netns.inside(|| {
        ensure_accounting(ACCT.as_ref()).expect("accounting on");
        // Listen before the flow exists: with nf_conntrack_events=2 only entries created while
        // a listener exists report their DESTROY.
        let mut source = NetlinkSource::open().expect("open ctnetlink");
        let loopback: IpAddr = "::1".parse().expect("an address");
        let (requests, answers) = ((3, 700), (4, 90));
        let exchange = udp_exchange(loopback, requests, answers);
        let port = exchange.server.port().to_string();
        let status = Command::new("conntrack")
            .args(["-D", "-f", "ipv6", "-p", "udp", "--orig-port-dst", &port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run conntrack -D (is conntrack-tools installed?)");
        assert!(status.success());

        // The kernel queues the event while handling the delete; poll briefly all the same.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen = Vec::new();
        let mut total = ReadStats::default();
        while seen.is_empty() && Instant::now() < deadline {
            let (records, stats) =
                collect(|sink| source.drain_destroyed(sink).expect("drain events"));
            total.add(stats);
            seen.extend(records.into_iter().filter(|r| is_exchange(r, &exchange)));
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(seen.len(), 1, "no DESTROY event for the deleted entry");
        assert_eq!((total.events_lost, total.malformed), (0, 0));
        expect_counters(&seen[0], loopback, requests, answers);

        let (records, _) = collect(|sink| source.dump(sink).expect("dump"));
        assert!(!records.iter().any(|r| is_exchange(r, &exchange)));
    });
}

#[test]
fn proc_and_netlink_report_the_same_counters_for_the_same_table() {
    let netns = Netns::new();
    netns.load_conntrack();
    netns.inside(|| {
        ensure_accounting(ACCT.as_ref()).expect("accounting on");
        let mut netlink = NetlinkSource::open().expect("open ctnetlink");
        let mut proc = ProcSource::with_path(THREAD_TABLE);
        let exchanges = [
            udp_exchange("127.0.0.1".parse().expect("v4"), (2, 10), (1, 20)),
            udp_exchange("::1".parse().expect("v6"), (7, 1200), (3, 5)),
        ];
        let (from_netlink, netlink_stats) = collect(|sink| netlink.dump(sink).expect("dump"));
        let (from_proc, proc_stats) = collect(|sink| proc.dump(sink).expect("read /proc"));
        assert_eq!(netlink_stats.entries, proc_stats.entries);
        assert_eq!((netlink_stats.malformed, proc_stats.malformed), (0, 0));
        for exchange in &exchanges {
            let kernel = from_netlink.iter().find(|r| is_exchange(r, exchange));
            let text = from_proc.iter().find(|r| is_exchange(r, exchange));
            let (kernel, text) = (kernel.expect("in the dump"), text.expect("in /proc"));
            assert_eq!(text.reply, kernel.reply);
            assert_eq!(text.original_counters, kernel.original_counters);
            assert_eq!(text.reply_counters, kernel.reply_counters);
        }
    });
}

/// Sends one 100-byte datagram from one socket to each of `flows` ports from `first_port` on:
/// `flows` new conntrack entries.
fn open_udp_flows(first_port: u16, flows: u16) {
    let client = UdpSocket::bind(("127.0.0.1", 0)).expect("bind client");
    for port in 0..flows {
        client
            .send_to(&[b'x'; 100], ("127.0.0.1", first_port + port))
            .expect("send");
    }
}

/// `conntrack -F`: every entry of the namespace is deleted at once, each with a DESTROY event.
fn flush_table(netns: &Netns) {
    let flushed = Command::new("ip")
        .args(["netns", "exec", &netns.name, "conntrack", "-F"])
        .stderr(Stdio::null())
        .status()
        .expect("run conntrack -F (is conntrack-tools installed?)");
    assert!(flushed.success());
}

/// `nf_conntrack_count` of the calling thread's namespace: live entries, plus those the kernel
/// keeps until their DESTROY event is delivered.
fn table_count() -> u64 {
    let text = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")
        .expect("read nf_conntrack_count");
    text.trim().parse().expect("a number")
}

fn table_max() -> f64 {
    let text = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .expect("read nf_conntrack_max");
    text.trim().parse().expect("a number")
}

/// Drains events until `until` holds of what was received, or 10 s pass.
fn drain_until(
    source: &mut NetlinkSource,
    until: impl Fn(&[FlowRecord]) -> bool,
) -> (Vec<FlowRecord>, ReadStats) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut total = ReadStats::default();
    while !until(&seen) && Instant::now() < deadline {
        source.wait_for_events(Duration::from_millis(50));
        let (records, stats) = collect(|sink| source.drain_destroyed(sink).expect("drain events"));
        total.add(stats);
        seen.extend(records);
    }
    (seen, total)
}

#[test]
fn events_that_overflow_a_small_buffer_are_counted_as_lost_without_reliable_delivery() {
    let netns = Netns::new();
    netns.load_conntrack();
    netns.inside(|| {
        ensure_accounting(ACCT.as_ref()).expect("accounting on");
        let mut config = NetlinkConfig::default();
        config.reliable_events = ReliableEvents::Off;
        // The kernel raises this to its minimum (a few KiB): room for a handful of events.
        config.event_buffer_bytes = 1;
        let mut source = NetlinkSource::open_with(&config).expect("open ctnetlink");
        let status = source.event_status();
        assert!(!status.reliable());
        status.pause_reading(true);
        let flows = 500u16;
        open_udp_flows(20000, flows);
        // 500 DESTROY events into a tiny buffer nobody reads.
        flush_table(&netns);
        std::thread::sleep(Duration::from_millis(300));
        status.pause_reading(false);
        std::thread::sleep(Duration::from_millis(300));
        let (records, stats) = drain_until(&mut source, |_| false);
        assert!(stats.events_lost >= 1, "{stats:?}");
        assert!(
            records.len() < usize::from(flows),
            "{} events received",
            records.len()
        );
        // The kernel's own count of what it could not queue, read from /proc/net/netlink.
        assert_eq!(
            status.dropped_and_lost(),
            u64::from(flows) - records.len() as u64,
            "{} received",
            records.len()
        );
        assert_eq!(stats.malformed, 0);
    });
}

#[test]
fn reliable_delivery_loses_no_event_while_the_reader_is_stopped() {
    let netns = Netns::new();
    netns.load_conntrack();
    netns.inside(|| {
        ensure_accounting(ACCT.as_ref()).expect("accounting on");
        let mut config = NetlinkConfig::default();
        // Room for a few hundred events: the rest must wait in the kernel. (The kernel's
        // worker re-sends what fits every 10 ms, so a tiny buffer would make this test slow.)
        config.event_buffer_bytes = 128 << 10;
        let mut source = NetlinkSource::open_with(&config).expect("open ctnetlink");
        let status = source.event_status();
        assert!(status.reliable(), "reliable delivery is the default");
        status.pause_reading(true);
        let flows = 3000u16;
        open_udp_flows(20000, flows);
        flush_table(&netns);
        std::thread::sleep(Duration::from_millis(500));
        // The kernel keeps every undelivered entry, and counts it in the table.
        let held = table_count();
        assert!(held >= 2000, "{held} entries held");
        status.pause_reading(false);
        let (records, stats) = drain_until(&mut source, |seen| seen.len() >= usize::from(flows));
        let ours: Vec<_> = records
            .iter()
            .filter(|r| r.original.dst_port >= 20000 && r.original.dst_port < 20000 + flows)
            .collect();
        assert_eq!(ours.len(), usize::from(flows), "{stats:?}");
        let bytes: u64 = ours.iter().map(|r| r.original_counters.bytes).sum();
        assert_eq!(
            bytes,
            u64::from(flows) * udp_l3_bytes("127.0.0.1".parse().expect("v4"), 100)
        );
        assert_eq!((stats.events_lost, status.dropped_and_lost()), (0, 0));
        assert!(
            status.dropped_and_resent() > 0,
            "the buffer never overflowed"
        );
        // Delivered entries are freed (after an RCU grace period, so not at the same instant).
        let deadline = Instant::now() + Duration::from_secs(10);
        while table_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(table_count(), 0, "delivered entries are freed");
    });
}

/// Rounds of 1,000 new flows, each flushed at once, while the reader is stopped; returns the
/// highest table count seen right after a flush, and the count at the end.
fn churn_with_a_stopped_reader(netns: &Netns, config: &NetlinkConfig) -> (u64, u64, u64) {
    let source = NetlinkSource::open_with(config).expect("open ctnetlink");
    let status = source.event_status();
    status.pause_reading(true);
    let mut peak = 0;
    for round in 0..8u16 {
        open_udp_flows(20000 + round * 1000, 1000);
        flush_table(netns);
        peak = peak.max(table_count());
        std::thread::sleep(Duration::from_millis(300));
    }
    let end = table_count();
    let trips = status.valve_trips();
    drop(source);
    (peak, end, trips)
}

#[test]
fn the_valve_keeps_a_stopped_reader_from_filling_the_table() {
    let netns = Netns::new();
    netns.load_conntrack();
    netns.inside(|| {
        ensure_accounting(ACCT.as_ref()).expect("accounting on");
        let max = table_max();
        let (threshold, resume) = (2500.0, 1000.0);
        let mut config = NetlinkConfig::default();
        config.event_buffer_bytes = 1;
        config.valve = ValveSettings {
            max_fill: threshold / max,
            resume_fill: resume / max,
            check_period: Duration::from_millis(20),
        };
        let (peak, end, trips) = churn_with_a_stopped_reader(&netns, &config);
        // Between two checks one round (1,000 entries) can land on top of the threshold.
        assert!(peak <= threshold as u64 + 1000, "peak {peak}");
        assert!(end <= threshold as u64, "end {end}");
        assert!(trips >= 1, "the valve never opened");
    });
}

#[test]
fn without_the_valve_a_stopped_reader_holds_every_destroyed_entry() {
    let netns = Netns::new();
    netns.load_conntrack();
    netns.inside(|| {
        ensure_accounting(ACCT.as_ref()).expect("accounting on");
        let mut config = NetlinkConfig::default();
        config.event_buffer_bytes = 1;
        config.reliable_events = ReliableEvents::On;
        let (peak, end, trips) = churn_with_a_stopped_reader(&netns, &config);
        // What the valve exists for: 8,000 dead entries kept for a reader that never comes.
        assert!(end >= 7000, "end {end}, peak {peak}");
        assert_eq!(trips, 0);
    });
}

/// The cgroup v2 directory of this process, from `/proc/self/cgroup` (`0::/path`) under the
/// cgroup2 mount.
fn own_cgroup_id() -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mount = netcost_conntrack::cgroup::find_cgroup2("/sys/fs/cgroup".as_ref())
        .expect("a cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified");
    let text = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line");
    std::fs::metadata(mount.join(path.trim_start_matches('/')))
        .expect("stat the cgroup")
        .ino()
}

#[test]
fn sock_diag_finds_connected_and_listening_sockets_with_their_cgroup_id() {
    use netcost_conntrack::sock_diag::{SockDiag, TCP_LISTEN, Transport};
    use std::net::{TcpListener, TcpStream};
    let netns = Netns::new();
    let cgroup = own_cgroup_id();
    netns.inside(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let server = listener.local_addr().expect("address");
        let client = TcpStream::connect(server).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        let client_addr = client.local_addr().expect("address");
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let udp_addr = udp.local_addr().expect("address");

        let mut diag = SockDiag::open().expect("open sock_diag");
        let mut seen = Vec::new();
        let stats = diag.dump_all(&mut |e| seen.push(*e)).expect("dump");
        assert_eq!(stats.malformed, 0);
        // Exactly our four sockets: the namespace is new.
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(seen.iter().all(|e| e.cgroup_id == Some(cgroup)), "{seen:?}");
        assert!(
            seen.iter()
                .any(|e| e.local == server && e.state == TCP_LISTEN)
        );
        assert!(
            seen.iter()
                .any(|e| e.local == client_addr && e.remote == server)
        );
        assert!(
            seen.iter()
                .any(|e| e.local == udp_addr && e.transport == Transport::Udp)
        );

        let (found, _) = diag
            .find(Transport::Tcp, client_addr, server)
            .expect("query");
        let found = found.expect("the client's socket");
        assert_eq!((found.local, found.remote), (client_addr, server));
        assert_eq!(found.cgroup_id, Some(cgroup));
        // The accepted end; and, once it is gone, the listener still answers for its port.
        let (found, _) = diag
            .find(Transport::Tcp, server, client_addr)
            .expect("query");
        assert_eq!(found.map(|f| f.state), Some(1));
        drop(accepted);
        drop(client);
        let nobody: SocketAddr = "127.0.0.1:9".parse().expect("address");
        let (found, _) = diag.find(Transport::Tcp, server, nobody).expect("query");
        assert_eq!(found.map(|f| f.state), Some(TCP_LISTEN));
        // No socket at all.
        let (found, _) = diag.find(Transport::Tcp, nobody, server).expect("query");
        assert_eq!(found, None);
        // A UDP flow to the bound socket, from anywhere.
        let (found, _) = diag.find(Transport::Udp, udp_addr, nobody).expect("query");
        assert_eq!(found.map(|f| f.local), Some(udp_addr));
    });
}
