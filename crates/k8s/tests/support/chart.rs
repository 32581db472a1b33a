//! Rendering the Helm chart (`deploy/helm/netcost`) with `gotmpl`, as `helm template` would: the
//! chart's values with overrides merged over them, template files in name order.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::gotmpl;

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

/// Helm's merge of a values file over the chart's defaults: maps merge, everything else replaces.
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

/// The rendered documents, or the first template error (a `fail` included), naming its file.
pub fn try_render(overrides: &[Value], release: &str, namespace: &str) -> Result<String, String> {
    let mut values = yaml(&read(&chart().join("values.yaml")), "values.yaml");
    for over in overrides {
        merge(&mut values, over.clone());
    }
    let root = json!({
        "Values": values,
        "Release": {"Name": release, "Namespace": namespace},
        "Chart": yaml(&read(&chart().join("Chart.yaml")), "Chart.yaml"),
    });
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("templates"))
        .unwrap_or_else(|e| panic!("templates: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = String::new();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let text = gotmpl::render(&read(&file), &root)
            .map_err(|e| format!("netcost/templates/{name}: {e}"))?;
        if text.trim().is_empty() {
            continue;
        }
        out.push_str(&format!("---\n# Source: netcost/templates/{name}\n"));
        out.push_str(text.trim_start_matches('\n').trim_end());
        out.push('\n');
    }
    Ok(out)
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

/// The documents of a rendering, empty ones left out.
pub fn documents(text: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}
