//! The Helm chart's `netcost serve` Deployment (`ui.enabled`), run: the container's rendered
//! arguments and environment are given to this build's binary, which must parse them, listen
//! where the probes and the Service look, answer the probes, and stop on SIGTERM as Kubernetes
//! stops a pod. The rendering itself (Helm's engine, kubernetes-validate) is
//! crates/k8s/tests/support/chart.rs, shared with the chart's own tests.

#[allow(dead_code)]
#[path = "../../k8s/tests/support/chart.rs"]
mod chart;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// The body of a GET, if it answered 200.
fn get(url: &str) -> Option<String> {
    let mut response = ureq::get(url).call().ok()?;
    response.body_mut().read_to_string().ok()
}

#[test]
fn the_rendered_ui_container_runs_answers_its_probes_and_stops_on_sigterm() {
    let port = free_port();
    let values = json!({"ui": {
        "enabled": true,
        // Nothing listens there: serve starts without Prometheus, and /healthz does not ask it.
        "prometheus": {"url": format!("http://127.0.0.1:{}", free_port())},
        "port": port,
        "provider": "gcp",
        "pricing": {"provider": "gcp", "cross_zone": {"egress": 0.02}},
    }});
    let rendered = chart::render_with(&[values], "netcost", "netcost");
    let docs = chart::documents(&rendered);
    let of = |kind: &str, name: &str| -> Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let deployment = of("Deployment", "netcost-netcost-ui");
    let config_map = of("ConfigMap", "netcost-netcost-ui");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];

    // The ConfigMap's files where the container mounts them, as the kubelet would.
    let mount = container["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap_or_else(|| panic!("no mount: {container}"));
    let dir = std::env::temp_dir().join(format!("netcost-chart-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (file, text) in config_map["data"].as_object().into_iter().flatten() {
        let path = dir.join(file);
        std::fs::write(&path, text.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap_or_else(|| panic!("no args: {container}"))
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap_or_default();
            match a.strip_prefix(mount) {
                Some(rest) => format!("{}{rest}", dir.display()),
                None => a.to_owned(),
            }
        })
        .collect();
    assert!(
        args.iter()
            .any(|a| a.starts_with(&dir.display().to_string())),
        "the pricing file is not passed: {args:?}"
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_netcost"));
    command
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for env in container["env"].as_array().into_iter().flatten() {
        command.env(
            env["name"].as_str().unwrap_or_default(),
            env["value"].as_str().unwrap_or_default(),
        );
    }
    let mut serve = command.spawn().unwrap_or_else(|e| panic!("{e}"));

    // The probes' port is the container port they name.
    let named = container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == container["livenessProbe"]["httpGet"]["port"])
        .and_then(|p| p["containerPort"].as_u64());
    assert_eq!(named, Some(u64::from(port)));
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut health = None;
    while health.is_none() && Instant::now() < deadline {
        if let Some(status) = serve.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            let err = serve
                .stderr
                .take()
                .map(|mut s| {
                    let mut text = String::new();
                    let _ = std::io::Read::read_to_string(&mut s, &mut text);
                    text
                })
                .unwrap_or_default();
            panic!("netcost {args:?} exited with {status}: {err}");
        }
        let path = container["livenessProbe"]["httpGet"]["path"]
            .as_str()
            .unwrap_or_default();
        health = get(&format!("{base}{path}"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(health.as_deref(), Some("ok\n"), "liveness probe");
    let path = container["readinessProbe"]["httpGet"]["path"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        get(&format!("{base}{path}")).as_deref(),
        Some("ok\n"),
        "readiness probe"
    );
    let page = get(&format!("{base}/")).unwrap_or_default();
    assert!(page.contains("<html"), "the UI at /: {page}");
    // The pricing file was read: the API names it as the sheet's source.
    let info = get(&format!("{base}/api/v1/info")).unwrap_or_default();
    let info: Value = serde_json::from_str(&info).unwrap_or_else(|e| panic!("{e}: {info}"));
    assert_eq!(info["provider"], "gcp", "{info}");
    assert!(
        info["pricing_source"]
            .as_str()
            .is_some_and(|s| s.contains(&dir.join("pricing.yaml").display().to_string())),
        "{info}"
    );

    // Kubernetes stops a pod with SIGTERM; serve must exit by itself, not wait for the SIGKILL
    // that follows the grace period.
    let sent = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(sent.success(), "kill -TERM: {sent}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve still runs 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "serve after SIGTERM: {status}");
}
