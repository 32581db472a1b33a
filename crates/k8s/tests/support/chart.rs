//! Rendering the Helm chart (`deploy/helm/netcost`) with Helm's own template engine, as
//! `helm template -f` would: helm-python-sdk (Helm as a library) run by `render_chart.py` in the
//! virtualenv `scripts/install-test-deps.sh` creates. Every rendering's objects are then checked
//! against Kubernetes' own schemas by `kubernetes-validate --strict`, offline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// The Kubernetes version whose schemas every rendered object is validated against.
const KUBERNETES_VERSION: &str = "1.33.0";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn chart() -> PathBuf {
    repo().join("deploy/helm/netcost")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn yaml(text: &str, what: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A program of the test virtualenv: `$NETCOST_TEST_VENV`, `/opt/netcost-test-venv` by default.
fn venv_bin(program: &str) -> PathBuf {
    let venv = std::env::var_os("NETCOST_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/netcost-test-venv"));
    let path = venv.join("bin").join(program);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/install-test-deps.sh, which creates the virtualenv with \
         helm-python-sdk and kubernetes-validate (set NETCOST_TEST_VENV to use another one)",
        path.display()
    );
    path
}

/// Runs `render_chart.py` with `args` and `stdin`: its stdout, or its stderr on failure.
fn render_chart_py(args: &[&str], stdin: &str) -> Result<String, String> {
    // From the repository root, not this crate's: crates/netcost's tests use this file too.
    let script = repo().join("crates/k8s/tests/support/render_chart.py");
    let mut child = Command::new(venv_bin("python"))
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    child
        .stdin
        .take()
        .map(|mut s| s.write_all(stdin.as_bytes()))
        .transpose()
        .unwrap_or_else(|e| panic!("render_chart.py stdin: {e}"));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("render_chart.py: {e}"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Helm's merge of a values file over another: maps merge, everything else replaces.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (k, v) in over {
                merge(base.entry(k).or_insert(Value::Null), v);
            }
        }
        (base, over) => *base = over,
    }
}

/// Validates the documents of a rendering with `kubernetes-validate --strict`. It has no schemas
/// for the Prometheus Operator's CRDs (it warns and passes them), so ServiceMonitor and PodMonitor
/// are left out here; chart.rs asserts their fields.
fn validate(documents: &[(String, String)]) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let mut text = String::new();
    let mut count = 0;
    for (source, doc) in documents {
        let kind = yaml(doc, source)["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if kind == "ServiceMonitor" || kind == "PodMonitor" {
            continue;
        }
        text.push_str(&format!("---\n# Source: {source}\n{doc}\n"));
        count += 1;
    }
    let file = std::env::temp_dir().join(format!(
        "netcost-chart-{}-{}.yaml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let out = Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("kubernetes-validate: {e}"));
    let _ = std::fs::remove_file(&file);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = report.lines().filter(|l| l.starts_with("INFO ")).count();
    assert!(
        out.status.success() && passed == count && !report.lines().any(|l| !l.starts_with("INFO ")),
        "kubernetes-validate --strict -k {KUBERNETES_VERSION}: {passed} of {count} objects \
         passed\n{report}\n{text}"
    );
}

/// Every file of a rendering (NOTES.txt included), by template path, or Helm's error (a schema
/// violation or a `fail` included, naming its template). Nothing is validated here.
pub fn render_files(
    overrides: &[Value],
    release: &str,
    namespace: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut values = Value::Object(Default::default());
    for over in overrides {
        merge(&mut values, over.clone());
    }
    let chart_dir = chart();
    let chart_dir = chart_dir.to_str().unwrap_or_else(|| panic!("chart path"));
    let out = render_chart_py(
        &["render", chart_dir, release, namespace],
        &values.to_string(),
    )?;
    Ok(serde_json::from_str(&out).unwrap_or_else(|e| panic!("render_chart.py: {e}\n{out}")))
}

/// The rendered documents, in template name order each headed by its source as `helm template`
/// prints it, or Helm's error (a `fail` included, naming its template).
pub fn try_render(overrides: &[Value], release: &str, namespace: &str) -> Result<String, String> {
    let files = render_files(overrides, release, namespace)?;
    let documents: Vec<(String, String)> = files
        .into_iter()
        .filter(|(name, text)| name.ends_with(".yaml") && !text.trim().is_empty())
        .map(|(name, text)| (name, text.trim_start_matches('\n').trim_end().to_owned()))
        .collect();
    validate(&documents);
    Ok(documents
        .iter()
        .map(|(source, doc)| format!("---\n# Source: {source}\n{doc}\n"))
        .collect())
}

/// [`try_render`] that panics on a template error.
pub fn render_with(overrides: &[Value], release: &str, namespace: &str) -> String {
    try_render(overrides, release, namespace).unwrap_or_else(|e| panic!("{e}"))
}

/// The chart rendered with its defaults, or with a values file over them.
pub fn render(values_file: Option<&Path>, release: &str, namespace: &str) -> String {
    let overrides: Vec<Value> = values_file
        .map(|f| yaml(&read(f), "values file"))
        .into_iter()
        .collect();
    render_with(&overrides, release, namespace)
}

/// `helm lint --strict` of the chart with `values` over its own, for [`KUBERNETES_VERSION`]: its
/// report (`messages`, each with `severity`, 2 a warning and 3 an error, and `error`; `errors`).
pub fn lint(values: &Value) -> Value {
    let chart_dir = chart();
    let chart_dir = chart_dir.to_str().unwrap_or_else(|| panic!("chart path"));
    let kube_version = format!("v{KUBERNETES_VERSION}");
    let out = render_chart_py(&["lint", chart_dir, &kube_version], &values.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lint report: {e}\n{out}"))
}

/// The documents of a rendering, empty ones left out.
pub fn documents(text: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Kubecost's `networkCosts` values (`tests/values/kubecost-network-costs.yaml`, source in its
/// header), verbatim: what a user who copies the block as is passes.
pub fn kubecost_values() -> PathBuf {
    repo().join("crates/k8s/tests/values/kubecost-network-costs.yaml")
}

/// Kubecost's block carried over as docs/install.md ("Carrying over a Kubecost networkCosts
/// block") says: `image` dropped, `enabled: true` as in a cluster that ran Kubecost's agent.
/// Everything else, `tolerations: []` included, stays as Kubecost ships it.
pub fn kubecost_carried_over() -> Value {
    let mut values = yaml(&read(&kubecost_values()), "Kubecost's values");
    let map = values
        .as_object_mut()
        .unwrap_or_else(|| panic!("Kubecost's values are not a map"));
    assert!(
        map.remove("image").is_some(),
        "Kubecost's block has an image"
    );
    map.insert("enabled".into(), serde_json::json!(true));
    values
}
