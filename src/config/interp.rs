//! `${VAR}` interpolation over the parsed YAML tree, before it is typed.
//!
//! Only string scalars are touched, so a secret can never break the YAML around it. An unset or
//! empty variable is an error with the YAML path where it was used: never an empty string.
//! `${VAR:-default}` takes the default when the variable is unset or empty; `$${` is a literal
//! `${`. A value that is exactly one placeholder is noted ([`Interpolated::whole`]): if its key
//! refuses a string, the value is read again as YAML (a number, a boolean), so
//! `max_connections: ${HUB_MAX}` works while `secret: ${SECRET}` stays text whatever it holds.

use serde_yaml_ng::Value;

/// What interpolation found: problems, and the paths whose value was one whole placeholder.
#[derive(Default)]
pub struct Interpolated {
    pub errors: Vec<(String, String)>,
    pub whole: Vec<String>,
}

/// Replaces every `${VAR}` in string scalars, noting each unset variable's path as an error.
pub fn interpolate(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    found: &mut Interpolated,
) {
    match value {
        Value::String(text) if text.contains("${") => match expand(text, lookup) {
            Ok(expanded) => {
                if is_one_placeholder(text) {
                    found.whole.push(path.to_string());
                }
                *text = expanded;
            }
            Err(message) => found.errors.push((path.to_string(), message)),
        },
        Value::Sequence(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{index}]"), lookup, found);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = match key {
                    Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                interpolate(item, &child, lookup, found);
            }
        }
        _ => {}
    }
}

/// `${NAME}` or `${NAME:-default}` and nothing else.
fn is_one_placeholder(text: &str) -> bool {
    text.starts_with("${") && text.ends_with('}') && text.matches("${").count() == 1
}

/// The value at `path` (as [`interpolate`] writes paths), read again as YAML if it is a number or
/// a boolean: whether it changed.
pub fn retype(tree: &mut Value, path: &str) -> bool {
    let Some(Value::String(text)) = at(tree, path) else {
        return false;
    };
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(typed @ (Value::Number(_) | Value::Bool(_))) => {
            if let Some(value) = at(tree, path) {
                *value = typed;
            }
            true
        }
        _ => false,
    }
}

/// The value at `path` (`a.b[0].c`; keys without `.` or `[`).
fn at<'v>(tree: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    let mut value = tree;
    for part in path.split('.') {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            value = value.get_mut(key)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            value = value.get_mut(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(value)
}

fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            // `$${`: a literal `${`.
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in `{text}`"))?;
        // `${NAME}`, or `${NAME:-default}` (shell style: the default when unset or empty).
        let (name, default) = match after[..end].split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (&after[..end], None),
        };
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!("`${{{name}}}` is not a valid variable name"));
        }
        match (lookup(name), default) {
            (Some(value), _) if !value.is_empty() => out.push_str(&value),
            (_, Some(default)) => out.push_str(default),
            (Some(_), None) => return Err(format!("environment variable {name} is set but empty")),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SECRET").then(|| "s3cr3t".to_string())
    }

    #[test]
    fn a_default_stands_in_for_an_unset_or_empty_variable() {
        let env = |name: &str| match name {
            "SECRET" => Some("s3cr3t".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand("${SECRET:-d}", &env).unwrap(), "s3cr3t");
        assert_eq!(expand("${MISSING:-d}", &env).unwrap(), "d");
        assert_eq!(expand("${EMPTY:-}", &env).unwrap(), "");
        assert_eq!(expand("a${MISSING:-}b", &env).unwrap(), "ab");
        assert!(expand("${EMPTY}", &env).is_err());
    }

    #[test]
    fn set_variables_expand_and_unset_ones_are_errors_with_paths() {
        let mut value: Value =
            serde_yaml_ng::from_str("a: { b: 'x-${SECRET}-y', c: ['${MISSING}'] }").unwrap();
        let mut found = Interpolated::default();
        interpolate(&mut value, "", &env, &mut found);
        assert_eq!(value["a"]["b"], Value::String("x-s3cr3t-y".into()));
        assert_eq!(
            found.errors,
            vec![(
                "a.c[0]".to_string(),
                "environment variable MISSING is not set".to_string()
            )]
        );
    }

    #[test]
    fn a_doubled_dollar_is_a_literal_placeholder() {
        assert_eq!(expand("$${SECRET}", &env).unwrap(), "${SECRET}");
        assert_eq!(expand("a$${X}-${SECRET}", &env).unwrap(), "a${X}-s3cr3t");
        assert_eq!(expand("$$", &env).unwrap(), "$$");
    }

    #[test]
    fn a_whole_placeholder_is_noted_and_can_be_read_again_as_a_number_or_boolean() {
        let env = |name: &str| Some(if name == "ON" { "true" } else { "10000" }.to_string());
        let yaml = "a: { n: '${N}', text: 'x${N}', on: '${ON}', list: ['${N}'] }";
        let mut value: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let mut found = Interpolated::default();
        interpolate(&mut value, "", &env, &mut found);
        assert_eq!(found.whole, ["a.n", "a.on", "a.list[0]"]);
        assert!(retype(&mut value, "a.n") && retype(&mut value, "a.on"));
        assert!(retype(&mut value, "a.list[0]"));
        assert_eq!(value["a"]["n"], Value::Number(10000.into()));
        assert_eq!(value["a"]["on"], Value::Bool(true));
        assert_eq!(value["a"]["list"][0], Value::Number(10000.into()));
        assert!(!retype(&mut value, "a.text"), "x10000 is text");
    }

    #[test]
    fn malformed_references_are_errors() {
        for bad in ["${", "${}", "${A-B}"] {
            assert!(expand(bad, &env).is_err(), "{bad}");
        }
        assert_eq!(expand("no vars $ here", &env).unwrap(), "no vars $ here");
    }
}
