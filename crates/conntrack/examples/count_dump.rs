//! The floor under any conntrack reader: one `AF_UNSPEC` ctnetlink dump of the current network
//! namespace's table that only counts the messages, parsing no attribute. `bench/run.sh kernel`
//! sets the agent's cycle against it.
//!
//! Run (root, in the namespace to measure): `cargo run --release -p netcost-conntrack --example
//! count_dump -- [repeats]`. Prints one line per dump: entries and milliseconds.

use std::time::Instant;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

/// `IPCTNL_MSG_CT_GET` of `NFNL_SUBSYS_CTNETLINK`, `NLM_F_REQUEST | NLM_F_DUMP`, family
/// `AF_UNSPEC`: the request the agent sends.
fn request(seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(&20u32.to_ne_bytes());
    out.extend_from_slice(&((1u16 << 8) | 1).to_ne_bytes());
    out.extend_from_slice(&(0x1u16 | 0x300).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

fn main() -> std::io::Result<()> {
    let repeats: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut buf = vec![0u8; 64 << 10];
    for seq in 1..=repeats {
        let started = Instant::now();
        socket.send(&request(seq), 0)?;
        let mut entries = 0u64;
        'dump: loop {
            let n = socket.recv(&mut &mut buf[..], 0)?.min(buf.len());
            let mut rest = &buf[..n];
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                if kind == 3 || kind == 2 {
                    break 'dump; // NLMSG_DONE, or NLMSG_ERROR
                }
                entries += 1;
                if len < 16 {
                    break 'dump;
                }
                rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
            }
            if n == 0 {
                break;
            }
        }
        println!(
            "entries={entries} ms={:.1}",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}
