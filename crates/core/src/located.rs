//! Deserialization from a `serde_json::Value` that says which field failed.
//!
//! serde's errors carry no path, and neither `k8s-openapi` nor this crate's dependencies add one.
//! So, when deserializing fails, the failing field is found by elimination: for each child of
//! the current node, deserialize again without that child; if the original error goes away (or
//! changes), the error lies inside that child, and the search goes down into it. This only runs
//! on the error path, where its cost (a few re-parses per level) does not matter.
//!
//! It also words the YAML parser's own errors (bad syntax, before any field is known) for the
//! same `file: where: reason` messages, with the file's name on the source snippet.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A deserialization error and the path of the field it is about.
#[derive(Debug)]
pub struct LocatedError {
    /// Path like `status.podIPs[1].ip`; empty when the error is about the whole value.
    pub field: String,
    /// serde's message.
    pub reason: String,
}

impl LocatedError {
    /// The field, or `top` when the error is about the whole value.
    pub fn field_or(&self, top: &str) -> String {
        if self.field.is_empty() {
            top.to_owned()
        } else {
            self.field.clone()
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// The YAML parser's error as the reason part of a `file: (document): not valid YAML: reason`
/// message: its position (`line 2 column 12`), what it found, and a snippet of the lines around
/// it headed by `file`'s name. The parser's own leading `error: ` is left out, since the whole
/// message already says it is one.
pub fn yaml_syntax_reason(error: &serde_saphyr::Error, file: &Path) -> String {
    let name = file.display().to_string();
    let rendered = error.render_with_options(serde_saphyr::render_options! {
        source_name: Some(name.as_str()),
    });
    match rendered.strip_prefix("error: ") {
        Some(rest) => rest.to_owned(),
        None => rendered,
    }
}

/// Deserializes `value` as `T`, locating the failing field on error.
pub fn deserialize<T: DeserializeOwned>(value: &Value) -> Result<T, LocatedError> {
    match T::deserialize(value) {
        Ok(v) => Ok(v),
        Err(e) => {
            let reason = e.to_string();
            let field = locate::<T>(value, &reason);
            Err(LocatedError { field, reason })
        }
    }
}

/// Short description of a value's type, for messages.
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn fails_the_same<T: DeserializeOwned>(value: &Value, reason: &str) -> bool {
    matches!(T::deserialize(value), Err(e) if e.to_string() == reason)
}

fn at<'v>(value: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get(k.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

fn at_mut<'v>(value: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

fn without(root: &Value, path: &[Step], child: &Step) -> Value {
    let mut copy = root.clone();
    match (at_mut(&mut copy, path), child) {
        (Some(Value::Object(map)), Step::Key(k)) => {
            map.remove(k);
        }
        (Some(Value::Array(items)), Step::Index(i)) if *i < items.len() => {
            items.remove(*i);
        }
        _ => {}
    }
    copy
}

fn locate<T: DeserializeOwned>(root: &Value, reason: &str) -> String {
    let mut path: Vec<Step> = Vec::new();
    loop {
        let children: Vec<Step> = match at(root, &path) {
            Some(Value::Object(map)) => map.keys().cloned().map(Step::Key).collect(),
            Some(Value::Array(items)) => (0..items.len()).map(Step::Index).collect(),
            _ => break,
        };
        let culprit = children
            .into_iter()
            .find(|child| !fails_the_same::<T>(&without(root, &path, child), reason));
        match culprit {
            Some(child) => path.push(child),
            None => break,
        }
    }
    render(&path)
}

fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_names_the_file_on_its_snippet_and_says_error_once() {
        let text = "destinations:\n  in-zone: [\n";
        let error = serde_saphyr::from_str::<Value>(text).unwrap_err();
        let reason = yaml_syntax_reason(&error, Path::new("/etc/netcost/config.yaml"));
        assert!(reason.starts_with("line 2 column 12: "), "{reason}");
        assert!(reason.contains("/etc/netcost/config.yaml:2:12"), "{reason}");
        assert!(!reason.contains("<input>"), "{reason}");
        assert!(!reason.contains("error:"), "{reason}");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        price: f64,
    }

    #[test]
    fn an_unknown_field_deep_in_a_list_is_located_by_its_path() {
        let value = serde_json::json!({"inner": [{"price": 1.0}, {"price": 2.0, "prise": 3.0}]});
        let error = deserialize::<Outer>(&value).unwrap_err();
        assert_eq!(error.field, "inner[1].prise");
        assert!(
            error.reason.contains("unknown field `prise`"),
            "{}",
            error.reason
        );
    }
}
