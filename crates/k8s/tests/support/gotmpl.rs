//! The part of Helm's template language that `deploy/helm/netcost` uses, and nothing more, so the
//! chart can be rendered and checked where no Helm binary can be installed.
//!
//! Supported: `{{ }}` with `{{-`/`-}}` whitespace trimming; `if`/`else`/`end`; values
//! (`.Values.a.b`, `.Release.Name`, `.Release.Namespace`, `.Chart.*`), string and integer
//! literals; pipelines with `|`; the functions `toYaml`, `nindent`, `indent`, `quote`, `or`,
//! `and`, and `fail` (which ends the rendering with its message, as Helm's does). Anything else is an error, so a template using more fails the test instead of rendering wrong.
//! `toYaml` follows Helm's: map keys sorted, list items at their key's indentation, no trailing
//! newline.

use serde_json::Value;

#[derive(Debug)]
enum Node {
    Text(String),
    Action(String),
    If(String, Vec<Node>, Vec<Node>),
}

/// Splits the template into text and actions, applying the trim markers.
fn lex(template: &str) -> Result<Vec<(bool, String)>, String> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("unclosed {{")?;
        let mut action = &after[..end];
        if let Some(a) = action.strip_prefix('-') {
            text = text.trim_end();
            action = a;
        }
        trim_next = false;
        if let Some(a) = action.strip_suffix('-') {
            trim_next = true;
            action = a;
        }
        out.push((false, text.to_owned()));
        out.push((true, action.trim().to_owned()));
        rest = &after[end + 2..];
    }
    out.push((
        false,
        if trim_next { rest.trim_start() } else { rest }.to_owned(),
    ));
    Ok(out)
}

fn parse(
    tokens: &mut std::vec::IntoIter<(bool, String)>,
    until_end: bool,
) -> Result<(Vec<Node>, Option<Vec<Node>>), String> {
    let mut nodes = Vec::new();
    while let Some((is_action, text)) = tokens.next() {
        if !is_action {
            nodes.push(Node::Text(text));
            continue;
        }
        if let Some(cond) = text.strip_prefix("if ") {
            let (then, otherwise) = parse(tokens, true)?;
            nodes.push(Node::If(
                cond.trim().to_owned(),
                then,
                otherwise.unwrap_or_default(),
            ));
        } else if text == "else" {
            if !until_end {
                return Err("else outside if".into());
            }
            let (otherwise, _) = parse(tokens, true)?;
            return Ok((nodes, Some(otherwise)));
        } else if text == "end" {
            if !until_end {
                return Err("end outside if".into());
            }
            return Ok((nodes, None));
        } else if text.starts_with("/*") {
            continue;
        } else {
            nodes.push(Node::Action(text));
        }
    }
    if until_end {
        return Err("if without end".into());
    }
    Ok((nodes, None))
}

/// Renders `template` with `root` as `.` (holding `Values`, `Release` and `Chart`).
pub fn render(template: &str, root: &Value) -> Result<String, String> {
    let mut tokens = lex(template)?.into_iter();
    let (nodes, _) = parse(&mut tokens, false)?;
    let mut out = String::new();
    emit(&nodes, root, &mut out)?;
    Ok(out)
}

fn emit(nodes: &[Node], root: &Value, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(a) => out.push_str(&text_of(&pipeline(a, root)?)),
            Node::If(cond, then, otherwise) => {
                let branch = if truthy(&pipeline(cond, root)?) {
                    then
                } else {
                    otherwise
                };
                emit(branch, root, out)?;
            }
        }
    }
    Ok(())
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// How Go's templates print a value; a missing value prints nothing, as in Helm.
fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn words(command: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = command.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::from("\"");
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(ch) => s.push(ch),
                    None => return Err(format!("unclosed string in {command:?}")),
                }
            }
            out.push(s);
        } else {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                s.push(ch);
                chars.next();
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn term(word: &str, root: &Value) -> Result<Value, String> {
    if let Some(s) = word.strip_prefix('"') {
        return Ok(Value::String(s.to_owned()));
    }
    if let Ok(n) = word.parse::<i64>() {
        return Ok(Value::from(n));
    }
    if let Some(path) = word.strip_prefix('.') {
        let mut v = root;
        for part in path.split('.') {
            match v.get(part) {
                Some(next) => v = next,
                None => return Ok(Value::Null),
            }
        }
        return Ok(v.clone());
    }
    Err(format!("unsupported term {word:?}"))
}

fn pipeline(text: &str, root: &Value) -> Result<Value, String> {
    let mut value: Option<Value> = None;
    for command in text.split('|') {
        let w = words(command)?;
        let (head, args) = w.split_first().ok_or("empty command")?;
        let mut args: Vec<Value> = args
            .iter()
            .map(|a| term(a, root))
            .collect::<Result<_, _>>()?;
        if let Some(previous) = value.take() {
            args.push(previous);
        }
        value = Some(match head.as_str() {
            "toYaml" => Value::String(to_yaml(args.first().ok_or("toYaml needs a value")?)),
            "nindent" | "indent" => {
                let n = args
                    .first()
                    .and_then(Value::as_u64)
                    .ok_or("indent needs a width")?;
                let s = text_of(args.get(1).ok_or("indent needs a string")?);
                let pad = " ".repeat(n as usize);
                let body: Vec<String> = s.lines().map(|l| format!("{pad}{l}")).collect();
                let prefix = if head == "nindent" { "\n" } else { "" };
                Value::String(format!("{prefix}{}", body.join("\n")))
            }
            "quote" => {
                let s = text_of(args.first().ok_or("quote needs a value")?);
                Value::String(serde_json::to_string(&s).map_err(|e| e.to_string())?)
            }
            "or" => args
                .iter()
                .find(|a| truthy(a))
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Null),
            "and" => args
                .iter()
                .find(|a| !truthy(a))
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Null),
            "fail" => {
                let message = text_of(args.first().ok_or("fail needs a message")?);
                return Err(format!("execution error: {message}"));
            }
            _ if args.is_empty() => term(head, root)?,
            other => return Err(format!("unsupported function {other:?}")),
        });
    }
    value.ok_or_else(|| "empty pipeline".to_owned())
}

/// YAML the way Helm's `toYaml` writes it.
pub fn to_yaml(v: &Value) -> String {
    let mut lines = Vec::new();
    block(v, 0, &mut lines);
    lines.join("\n")
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                && !matches!(
                    s.as_str(),
                    "true" | "false" | "null" | "yes" | "no" | "on" | "off"
                )
                && s.parse::<f64>().is_err()
                && !s.starts_with(['-', '.']);
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        _ => unreachable!("collections are blocks"),
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty()) || matches!(v, Value::Object(o) if !o.is_empty())
}

fn block(v: &Value, indent: usize, lines: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                let child = &map[k];
                let key = scalar(&Value::String(k.clone()));
                match child {
                    Value::Object(_) if is_block(child) => {
                        lines.push(format!("{pad}{key}:"));
                        block(child, indent + 2, lines);
                    }
                    Value::Array(_) if is_block(child) => {
                        lines.push(format!("{pad}{key}:"));
                        block(child, indent, lines);
                    }
                    _ => lines.push(format!("{pad}{key}: {}", scalar(child))),
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                if is_block(item) {
                    let mut inner = Vec::new();
                    block(item, indent + 2, &mut inner);
                    let first = inner.remove(0);
                    lines.push(format!("{pad}- {}", &first[indent + 2..]));
                    lines.extend(inner);
                } else {
                    lines.push(format!("{pad}- {}", scalar(item)));
                }
            }
        }
        other => lines.push(format!("{pad}{}", scalar(other))),
    }
}
