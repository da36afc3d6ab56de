//! The JSON Schema of `gateway.yaml` (`fleetgate schema`), generated from the raw configuration
//! types (`raw.rs`, what the file is read into), so it cannot drift from what is accepted:
//! unknown keys are refused as the loader refuses them, and a number or boolean may also be one
//! whole `${VAR}` placeholder (read again as its key's type, see `interp`). Values the loader
//! checks further (units, addresses, names) are only typed here; `fleetgate validate` checks them.

use super::raw::RawConfig;
use serde_json::{json, Map, Value};

/// A whole `${NAME}` or `${NAME:-default}` placeholder.
const PLACEHOLDER: &str = r"^\$\{[A-Za-z0-9_]+(:-[^}]*)?\}$";

/// The schema, as the JSON `fleetgate schema` prints.
pub fn schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(RawConfig)).unwrap_or_default();
    walk(&mut schema);
    if let Value::Object(root) = &mut schema {
        root.insert("title".into(), "fleetgate gateway.yaml".into());
        root.insert(
            "description".into(),
            "fleetgate's configuration file (see the README's configuration reference).".into(),
        );
    }
    schema
}

/// Closes every object with named properties to other keys, and lets every number or boolean be
/// a placeholder too.
fn walk(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                walk(child);
            }
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), false.into());
            }
            if typed_scalar(map) {
                let typed = Value::Object(std::mem::take(map));
                let placeholder = json!({ "type": "string", "pattern": PLACEHOLDER });
                map.insert("anyOf".into(), json!([typed, placeholder]));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(walk),
        _ => {}
    }
}

/// Whether `map` is the schema of a number, an integer or a boolean (perhaps nullable).
fn typed_scalar(map: &Map<String, Value>) -> bool {
    let scalar = |t: &Value| matches!(t.as_str(), Some("integer" | "number" | "boolean"));
    match map.get("type") {
        Some(Value::String(_)) => map.get("type").is_some_and(scalar),
        Some(Value::Array(types)) => types.iter().any(scalar),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_also_take_a_placeholder_and_objects_are_closed() {
        let schema = schema();
        let text = schema.to_string();
        assert!(text.contains(r#""additionalProperties":false"#), "{text}");
        assert!(
            text.contains(PLACEHOLDER.replace('\\', "\\\\").as_str()),
            "{text}"
        );
        assert_eq!(schema["title"], "fleetgate gateway.yaml");
    }
}
