//! Opt-in fallback for a node without zone labels: ask the cloud's instance metadata endpoint
//! which zone this machine is in.
//!
//! Providers, tried in this order on the same link-local address (`169.254.169.254:80`):
//! - AWS, IMDSv2: `PUT /latest/api/token`, then
//!   `GET /latest/meta-data/placement/availability-zone` and `.../placement/region` with the token
//!   (<https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html>);
//! - GCP: `GET /computeMetadata/v1/instance/zone` with `Metadata-Flavor: Google`, which answers
//!   `projects/<number>/zones/<zone>`; the region is the zone without its last `-<letter>`
//!   (<https://cloud.google.com/compute/docs/metadata/predefined-metadata-keys>);
//! - Azure: `GET /metadata/instance/compute?api-version=2021-02-01` with `Metadata: true`, whose
//!   `location` and `zone` (`"1"`) make the AKS zone label `eastus-1`
//!   (<https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service>).
//!
//! Every request has a short timeout, and a refused or silent connection ends the search at once:
//! off a cloud there is nothing to wait for. Requests are HTTP/1.0 with `Connection: close`, so
//! the answer is the rest of the stream and no chunked decoding is needed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::cache::ZoneFallback;

/// The link-local address all three providers serve metadata on.
pub const METADATA_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(169, 254, 169, 254),
    80,
));

/// The zone and region the metadata endpoint at `addr` reports, trying AWS, GCP and Azure.
/// `None` when no provider answers within `timeout` per request.
pub fn discover(addr: SocketAddr, timeout: Duration) -> Option<(&'static str, ZoneFallback)> {
    // A first connection tells whether anything listens; without it every provider would wait
    // out its own timeout.
    TcpStream::connect_timeout(&addr, timeout).ok()?;
    if let Some(found) = aws(addr, timeout) {
        return Some(("aws", found));
    }
    if let Some(found) = gcp(addr, timeout) {
        return Some(("gcp", found));
    }
    azure(addr, timeout).map(|found| ("azure", found))
}

fn aws(addr: SocketAddr, timeout: Duration) -> Option<ZoneFallback> {
    let token = request(
        addr,
        timeout,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    )?;
    let token = token.trim();
    let header = [("X-aws-ec2-metadata-token", token)];
    let zone = request(
        addr,
        timeout,
        "GET",
        "/latest/meta-data/placement/availability-zone",
        &header,
    )?;
    let region = request(
        addr,
        timeout,
        "GET",
        "/latest/meta-data/placement/region",
        &header,
    );
    fallback(zone.trim(), region.as_deref().map(str::trim))
}

fn gcp(addr: SocketAddr, timeout: Duration) -> Option<ZoneFallback> {
    let path = request(
        addr,
        timeout,
        "GET",
        "/computeMetadata/v1/instance/zone",
        &[("Metadata-Flavor", "Google")],
    )?;
    let zone = path.trim().rsplit('/').next()?;
    // us-central1-a → us-central1
    let region = zone.rsplit_once('-').map(|(region, _)| region);
    fallback(zone, region)
}

fn azure(addr: SocketAddr, timeout: Duration) -> Option<ZoneFallback> {
    let body = request(
        addr,
        timeout,
        "GET",
        "/metadata/instance/compute?api-version=2021-02-01",
        &[("Metadata", "true")],
    )?;
    let compute: serde_json::Value = serde_json::from_str(&body).ok()?;
    let location = compute.get("location")?.as_str()?;
    // A VM outside an availability zone has `"zone": ""`; AKS labels its nodes with the zone
    // number `0` then, which says nothing about placement.
    let zone = compute.get("zone")?.as_str().filter(|z| !z.is_empty())?;
    fallback(&format!("{location}-{zone}"), Some(location))
}

fn fallback(zone: &str, region: Option<&str>) -> Option<ZoneFallback> {
    // Zones and regions are short lowercase tokens (`us-east-1a`, `eastus-2`); anything else, such
    // as an HTML error page, is not a zone.
    let token = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    token(zone).then(|| ZoneFallback {
        zone: zone.to_owned(),
        region: region.filter(|r| token(r)).map(str::to_owned),
    })
}

/// One HTTP/1.0 request; the body of a 200 answer, else `None`.
fn request(
    addr: SocketAddr,
    timeout: Duration,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let mut answer = Vec::new();
    // A metadata answer is a few hundred bytes; the cap keeps a misbehaving peer from filling
    // memory before the timeout.
    stream.take(64 * 1024).read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8(answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A fake metadata server on 127.0.0.1 answering `routes` (method and path prefix → status and
    /// body, checked against a required header), for as many connections as the test makes.
    fn fake(routes: Vec<(&'static str, &'static str, &'static str, u16, String)>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let mut answer = (404, String::new());
                for (method, path, header, status, body) in &routes {
                    if text.starts_with(&format!("{method} {path}")) && text.contains(header) {
                        answer = (*status, body.clone());
                        break;
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {} X\r\nContent-Length: {}\r\n\r\n{}",
                    answer.0,
                    answer.1.len(),
                    answer.1
                );
            }
        });
        addr
    }

    const T: Duration = Duration::from_millis(500);

    #[test]
    fn aws_imdsv2_gives_zone_and_region_with_a_session_token() {
        let addr = fake(vec![
            (
                "PUT",
                "/latest/api/token",
                "X-aws-ec2-metadata-token-ttl-seconds: 60",
                200,
                "tok".into(),
            ),
            (
                "GET",
                "/latest/meta-data/placement/availability-zone",
                "X-aws-ec2-metadata-token: tok",
                200,
                "us-east-1a".into(),
            ),
            (
                "GET",
                "/latest/meta-data/placement/region",
                "X-aws-ec2-metadata-token: tok",
                200,
                "us-east-1".into(),
            ),
        ]);
        let found = discover(addr, T);
        assert_eq!(
            found,
            Some((
                "aws",
                ZoneFallback {
                    zone: "us-east-1a".into(),
                    region: Some("us-east-1".into())
                }
            ))
        );
    }

    #[test]
    fn gcp_zone_path_becomes_zone_and_region() {
        let addr = fake(vec![(
            "GET",
            "/computeMetadata/v1/instance/zone",
            "Metadata-Flavor: Google",
            200,
            "projects/123456/zones/europe-west4-b".into(),
        )]);
        let found = discover(addr, T);
        assert_eq!(
            found,
            Some((
                "gcp",
                ZoneFallback {
                    zone: "europe-west4-b".into(),
                    region: Some("europe-west4".into())
                }
            ))
        );
    }

    #[test]
    fn azure_location_and_zone_number_make_the_aks_zone_label() {
        let addr = fake(vec![(
            "GET",
            "/metadata/instance/compute",
            "Metadata: true",
            200,
            r#"{"location":"eastus","zone":"2","vmSize":"Standard_D2s_v5"}"#.into(),
        )]);
        let found = discover(addr, T);
        assert_eq!(
            found,
            Some((
                "azure",
                ZoneFallback {
                    zone: "eastus-2".into(),
                    region: Some("eastus".into())
                }
            ))
        );
    }

    #[test]
    fn nothing_listening_finds_no_zone() {
        // Bind then drop: the port is closed, so every provider's request is refused.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(discover(addr, T), None);
    }

    #[test]
    fn an_error_page_is_not_a_zone() {
        let addr = fake(vec![(
            "GET",
            "/computeMetadata/v1/instance/zone",
            "Metadata-Flavor: Google",
            200,
            "<html><body>not here</body></html>".into(),
        )]);
        assert_eq!(discover(addr, T), None);
    }
}
