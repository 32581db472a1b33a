//! Traffic with exactly known byte counts, sent from real sockets inside the test namespaces.
//!
//! The bytes that these helpers sent are the ground truth of every assertion; nothing else
//! (iperf, estimates) is trusted.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::{join, spawn_in_netns};

const CHUNK: usize = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One TCP connection that sends a fixed number of bytes each way and then closes cleanly.
#[derive(Clone, Debug)]
pub struct TcpFlow {
    /// Namespace of the connecting side.
    pub client_ns: String,
    /// Namespace of the listening side.
    pub server_ns: String,
    /// Where the server listens.
    pub listen: SocketAddr,
    /// Where the client connects: the server itself, or a ClusterIP or NodePort that leads to it.
    pub connect: SocketAddr,
    /// Bytes from client to server.
    pub client_sends: u64,
    /// Bytes from server to client.
    pub server_sends: u64,
    /// Spread the client's bytes evenly over this long, instead of sending at full speed.
    pub client_pace: Option<Duration>,
    /// Stop the client's sending part-way until the test resumes it.
    pub client_pause: Option<Pause>,
}

/// A point in a flow where the client stops sending until the test resumes it.
#[derive(Clone, Debug)]
pub struct Pause {
    /// Bytes the client sends before it stops; a multiple of 64 KiB.
    pub after: u64,
    reached: Gate,
    resume: Gate,
}

impl Pause {
    /// Stops the client after `after` bytes.
    pub fn after(after: u64) -> Pause {
        assert_eq!(after % CHUNK as u64, 0, "pause on a write boundary");
        Pause {
            after,
            reached: Gate::default(),
            resume: Gate::default(),
        }
    }

    /// Waits until the client has written its bytes before the pause and stopped.
    pub fn wait_reached(&self) {
        self.reached.wait();
    }

    /// Lets the client go on.
    pub fn resume(&self) {
        self.resume.open();
    }
}

/// A one-shot signal between threads.
#[derive(Clone, Debug, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0.0.lock().expect("gate lock") = true;
        self.0.1.notify_all();
    }

    fn wait(&self) {
        let (lock, cvar) = &*self.0;
        let guard = lock.lock().expect("gate lock");
        let (_open, timeout) = cvar
            .wait_timeout_while(guard, IO_TIMEOUT, |open| !*open)
            .expect("gate lock");
        assert!(!timeout.timed_out(), "nobody opened the gate");
    }
}

/// What one side of a [`TcpFlow`] did.
#[derive(Clone, Copy, Debug)]
pub struct Side {
    /// Payload bytes written.
    pub sent: u64,
    /// `write` calls made (each may leave one short segment behind).
    pub writes: u64,
}

/// What a finished [`TcpFlow`] did, checked on both ends.
#[derive(Clone, Copy, Debug)]
pub struct TcpReport {
    /// The connecting side.
    pub client: Side,
    /// The listening side.
    pub server: Side,
    /// Whether the flow ran over IPv6.
    pub v6: bool,
}

impl TcpFlow {
    /// Runs the flow to the end.
    pub fn run(self) -> TcpReport {
        join(self.spawn())
    }

    /// Starts the flow in the background; the listener is bound when this returns.
    pub fn spawn(self) -> JoinHandle<TcpReport> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let listen = self.listen;
        let (server_sends, client_sends) = (self.server_sends, self.client_sends);
        let server = spawn_in_netns(&self.server_ns, move || {
            let listener = match TcpListener::bind(listen) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("bind {listen}: {e}")));
                    return None;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let stream = accept_within(&listener, IO_TIMEOUT);
            Some(exchange(stream, server_sends, client_sends, None, None))
        });
        if let Err(e) = ready_rx.recv().expect("server thread started") {
            panic!("{e}");
        }
        let (client_ns, connect) = (self.client_ns, self.connect);
        let (pace, pause) = (self.client_pace, self.client_pause);
        std::thread::spawn(move || {
            let client = join(spawn_in_netns(&client_ns.clone(), move || {
                let stream = TcpStream::connect_timeout(&connect, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("connect from {client_ns} to {connect}: {e}"));
                exchange(stream, client_sends, server_sends, pace, pause)
            }));
            let server = join(server).expect("server side ran");
            TcpReport {
                client,
                server,
                v6: connect.is_ipv6(),
            }
        })
    }
}

fn accept_within(listener: &TcpListener, timeout: Duration) -> TcpStream {
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Writes `send` bytes (then a FIN) while reading until the peer's FIN; checks that exactly
/// `expect` bytes arrived.
fn exchange(
    stream: TcpStream,
    send: u64,
    expect: u64,
    pace: Option<Duration>,
    pause: Option<Pause>,
) -> Side {
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut writer = stream.try_clone().expect("clone the stream");
    let write_side = std::thread::spawn(move || {
        let buf = vec![0x5a_u8; CHUNK];
        let chunks = send.div_ceil(CHUNK as u64).max(1);
        let start = Instant::now();
        let (mut sent, mut writes) = (0_u64, 0_u64);
        while sent < send {
            if let Some(pause) = pause.as_ref().filter(|p| p.after == sent) {
                pause.reached.open();
                pause.resume.wait();
            }
            if let Some(pace) = pace {
                let due = start + pace.mul_f64(writes as f64 / chunks as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let n = (send - sent).min(CHUNK as u64) as usize;
            writer.write_all(&buf[..n]).expect("write");
            sent += n as u64;
            writes += 1;
        }
        writer.shutdown(Shutdown::Write).expect("shutdown write");
        Side { sent, writes }
    });
    let mut reader = stream;
    let mut buf = vec![0_u8; CHUNK];
    let mut received = 0_u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read after {received} bytes: {e}"),
        }
    }
    let side = join(write_side);
    assert_eq!(received, expect, "bytes received over TCP");
    side
}

/// Many short UDP request/reply flows, each from its own client port.
#[derive(Clone, Debug)]
pub struct UdpFlows {
    /// Namespace of the sending side.
    pub client_ns: String,
    /// Namespace of the answering side.
    pub server_ns: String,
    /// Where the server listens.
    pub listen: SocketAddr,
    /// Where the client sends.
    pub connect: SocketAddr,
    /// How many flows; flow `i` uses client port `first_client_port + i`.
    pub flows: u16,
    /// First client port.
    pub first_client_port: u16,
    /// Payload of each request datagram.
    pub request: usize,
    /// Payload of each reply datagram.
    pub reply: usize,
}

/// What [`UdpFlows`] did: every request was answered exactly once.
#[derive(Clone, Copy, Debug)]
pub struct UdpReport {
    /// Datagrams each way.
    pub datagrams: u64,
    /// Payload per request.
    pub request: u64,
    /// Payload per reply.
    pub reply: u64,
    /// Whether the flows ran over IPv6.
    pub v6: bool,
}

impl UdpReport {
    /// IP + UDP header bytes per datagram: conntrack counts whole IP packets.
    fn header(&self) -> u64 {
        if self.v6 { 40 + 8 } else { 20 + 8 }
    }

    /// Bytes the kernel counts from client to server: exact, no estimate.
    pub fn client_to_server(&self) -> u64 {
        self.datagrams * (self.request + self.header())
    }

    /// Bytes the kernel counts from server to client.
    pub fn server_to_client(&self) -> u64 {
        self.datagrams * (self.reply + self.header())
    }
}

impl UdpFlows {
    /// Sends every flow, one after the other, and waits for each reply.
    pub fn run(self) -> UdpReport {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (listen, flows, reply) = (self.listen, self.flows, self.reply);
        let server = spawn_in_netns(&self.server_ns, move || {
            let socket = UdpSocket::bind(listen).unwrap_or_else(|e| panic!("bind {listen}: {e}"));
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            ready_tx.send(()).expect("signal ready");
            let answer = vec![0xa5_u8; reply];
            let mut buf = vec![0_u8; 65536];
            for _ in 0..flows {
                let (_, from) = socket.recv_from(&mut buf).expect("receive a request");
                socket.send_to(&answer, from).expect("send a reply");
            }
        });
        ready_rx.recv().expect("server ready");
        let flow = self.clone();
        let datagrams = join(spawn_in_netns(&self.client_ns, move || {
            let request = vec![0x3c_u8; flow.request];
            let mut buf = vec![0_u8; 65536];
            let any: SocketAddr = if flow.connect.is_ipv6() {
                "[::]:0".parse().expect("address")
            } else {
                "0.0.0.0:0".parse().expect("address")
            };
            for i in 0..flow.flows {
                let mut local = any;
                local.set_port(flow.first_client_port + i);
                let socket = UdpSocket::bind(local).unwrap_or_else(|e| panic!("bind {local}: {e}"));
                socket.connect(flow.connect).expect("connect");
                socket
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                assert_eq!(socket.send(&request).expect("send"), flow.request);
                let got = socket.recv(&mut buf).unwrap_or_else(|e| {
                    panic!("no reply to flow {i} from port {}: {e}", local.port())
                });
                assert_eq!(got, flow.reply, "reply size");
            }
            u64::from(flow.flows)
        }));
        join(server);
        UdpReport {
            datagrams,
            request: self.request as u64,
            reply: self.reply as u64,
            v6: self.connect.is_ipv6(),
        }
    }
}
