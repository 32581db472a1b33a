//! Fetching `/metrics` from inside a namespace, and a small matcher over the text exposition.
//!
//! ```ignore
//! let m = Metrics::parse(&body)?;
//! let bytes = m
//!     .metric("kubecost_pod_network_egress_bytes_total")
//!     .label("pod_name", "web-a")
//!     .label("same_zone", "false")
//!     .value();
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use super::netns::in_netns;

/// `GET path` over plain HTTP/1.0 to 127.0.0.1:`port` inside namespace `ns`.
pub fn http_get(ns: &str, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    in_netns(ns, || {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        parse_response(&raw)
    })
}

fn parse_response(raw: &[u8]) -> std::io::Result<(u16, String)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// One sample line: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A parsed Prometheus (or OpenMetrics) text exposition.
#[derive(Debug)]
pub struct Metrics {
    samples: Vec<Sample>,
    text: String,
}

impl Metrics {
    /// Parses the text format; comments, `# EOF` and timestamps are skipped.
    pub fn parse(text: &str) -> Result<Metrics, String> {
        let mut samples = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_sample(line).map_err(|e| format!("line {}: {e}: {line}", n + 1))?);
        }
        Ok(Metrics {
            samples,
            text: text.to_owned(),
        })
    }

    /// The sample lines that contain any of `needles`, for failure messages.
    pub fn lines_with<'a>(&'a self, needles: &'a [&str]) -> impl Iterator<Item = &'a str> {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#') && needles.iter().any(|n| l.contains(n)))
    }

    /// Starts a query for the series of one metric.
    pub fn metric<'a>(&'a self, name: &'a str) -> Query<'a> {
        Query {
            metrics: self,
            name,
            labels: Vec::new(),
        }
    }
}

/// Series of one metric that match every label given so far.
pub struct Query<'a> {
    metrics: &'a Metrics,
    name: &'a str,
    labels: Vec<(&'a str, &'a str)>,
}

impl<'a> Query<'a> {
    /// Keeps only series whose label `key` equals `value`.
    pub fn label(mut self, key: &'a str, value: &'a str) -> Self {
        self.labels.push((key, value));
        self
    }

    fn matching(&self) -> impl Iterator<Item = &'a Sample> + '_ {
        self.metrics.samples.iter().filter(|s| {
            s.name == self.name
                && self
                    .labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
    }

    /// Sum of the matching series; 0 when none match (an absent counter has counted nothing).
    pub fn value(&self) -> f64 {
        self.matching().map(|s| s.value).sum()
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').ok_or("label without '='")?;
            let key = rest[..eq].trim().to_owned();
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value without quotes")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, c) => value.push(c),
                }
            };
            rest = &rest[end + 1..];
            labels.push((key, value));
        }
    }
    let value_text = rest.split_whitespace().next().ok_or("no value")?;
    let value = value_text
        .parse::<f64>()
        .map_err(|e| format!("bad value {value_text:?}: {e}"))?;
    Ok(Sample {
        name,
        labels,
        value,
    })
}
