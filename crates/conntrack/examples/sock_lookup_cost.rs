//! What the socket lookups for hostNetwork pods cost: `N` TCP connections over loopback in the
//! current network namespace, made by this process after it moved itself into a cgroup named as
//! kubelet names a pod's, then one pipeline cycle's worth of lookups of every connection's node
//! end, in batch mode (one socket dump, joined by tuple) and in per-flow mode (one query each),
//! and a second cycle, answered from the kept answers.
//!
//! Run (root, in a scratch namespace: `bench/run.sh sockets N` does it all):
//! `sock_lookup_cost N CGROUP2_MOUNT POD_CGROUP_DIR`. Prints one line per measurement.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

use netcost_conntrack::sock_diag::SockDiag;
use netcost_conntrack::sock_owner::{LookupMode, SocketOwnerResolver, SocketOwnerSettings};
use netcost_core::flow::{FlowOrigin, FlowRecord};
use netcost_core::socket_owner::{NodeSide, SocketOwners};

/// Connections per listening port: below the default ephemeral port range (28,232 ports).
const PER_LISTENER: usize = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().ok_or("N")?.parse()?;
    let mount = PathBuf::from(args.next().ok_or("CGROUP2_MOUNT")?);
    let pod_cgroup = PathBuf::from(args.next().ok_or("POD_CGROUP_DIR")?);
    std::fs::write(
        pod_cgroup.join("cgroup.procs"),
        std::process::id().to_string(),
    )?;

    let listeners = n.div_ceil(PER_LISTENER);
    let mut servers = Vec::new();
    let mut accepters = Vec::new();
    for i in 0..listeners {
        let listener = TcpListener::bind(("127.0.0.1", 20_000 + i as u16))?;
        servers.push(listener.local_addr()?);
        let count = PER_LISTENER.min(n - i * PER_LISTENER);
        accepters.push(std::thread::spawn(move || {
            (0..count)
                .map(|_| listener.accept().map(|(s, _)| s))
                .collect::<Result<Vec<_>, _>>()
        }));
    }
    let started = Instant::now();
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        clients.push(TcpStream::connect(servers[i / PER_LISTENER])?);
    }
    let accepted: usize = accepters
        .into_iter()
        .map(|t| {
            t.join()
                .map_err(|_| "accept thread")
                .map(|r| r.map(|v| v.len()))
        })
        .collect::<Result<Result<Vec<usize>, _>, _>>()??
        .into_iter()
        .sum();
    println!(
        "connections {n} (accepted {accepted}, {} sockets with the listeners) in {:.0} ms",
        n + accepted + listeners,
        started.elapsed().as_secs_f64() * 1e3
    );
    let records: Vec<FlowRecord> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| -> std::io::Result<FlowRecord> {
            Ok(FlowRecord::tcp(
                i as u32,
                c.local_addr()?,
                c.peer_addr()?,
                1000,
                1000,
            ))
        })
        .collect::<Result<_, _>>()?;

    let mut diag = SockDiag::open()?;
    for _ in 0..3 {
        let t = Instant::now();
        let stats = diag.dump_all(&mut |_| {})?;
        println!(
            "bare socket dump: {} sockets in {:.1} ms",
            stats.sockets,
            t.elapsed().as_secs_f64() * 1e3
        );
    }

    for mode in [LookupMode::Batch, LookupMode::PerFlow] {
        let mut settings = SocketOwnerSettings::new(mount.clone());
        settings.mode = mode;
        settings.new_events = false;
        settings.max_answers = n.max(1);
        settings.max_snapshot_sockets = 4 * n.max(1);
        let mut resolver = SocketOwnerResolver::open(settings)?;
        for cycle in 1..=2 {
            resolver.begin_cycle();
            let t = Instant::now();
            let matched = records
                .iter()
                .filter(|r| {
                    resolver
                        .owner(r, NodeSide::Initiator, FlowOrigin::Dump)
                        .is_some()
                })
                .count();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            resolver.end_cycle();
            println!(
                "{} cycle {cycle}: {n} node ends looked up, {matched} matched a pod, {ms:.1} ms \
                 ({:.2} µs per flow)",
                mode.as_str(),
                ms * 1e3 / n.max(1) as f64
            );
        }
    }
    // The connections stay open until here.
    drop(clients);
    Ok(())
}
