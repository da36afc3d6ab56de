//! `${VAR}` interpolation over the parsed YAML tree, before it is typed.
//!
//! Only string scalars are touched, so a secret can never break the YAML around it. An unset or
//! empty variable is an error with the YAML path where it was used: never an empty string.

use serde_yaml_ng::Value;

/// Replaces every `${VAR}` in string scalars, pushing `(path, message)` for each unset variable.
pub fn interpolate(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<(String, String)>,
) {
    match value {
        Value::String(text) if text.contains("${") => match expand(text, lookup) {
            Ok(expanded) => *text = expanded,
            Err(message) => errors.push((path.to_string(), message)),
        },
        Value::Sequence(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{index}]"), lookup, errors);
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
                interpolate(item, &child, lookup, errors);
            }
        }
        _ => {}
    }
}

fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
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
        let mut errors = Vec::new();
        interpolate(&mut value, "", &env, &mut errors);
        assert_eq!(value["a"]["b"], Value::String("x-s3cr3t-y".into()));
        assert_eq!(
            errors,
            vec![(
                "a.c[0]".to_string(),
                "environment variable MISSING is not set".to_string()
            )]
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        for bad in ["${", "${}", "${A-B}"] {
            assert!(expand(bad, &env).is_err(), "{bad}");
        }
        assert_eq!(expand("no vars $ here", &env).unwrap(), "no vars $ here");
    }
}
