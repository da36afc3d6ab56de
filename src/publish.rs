//! Webhook → hub mapping: templates that turn a verified webhook's JSON into a hub event.
//!
//! Pure: no I/O. A template string may hold `{path}` placeholders (`{data.workspace_id}`), read
//! from the webhook body by dotted path, plus `{now}` (Unix seconds) and `{now_iso}` (UTC, ISO
//! 8601). In a payload, a string that is exactly one placeholder copies the value with its JSON
//! type (a number stays a number: the page compares `workspace_id` strictly); other strings are
//! interpolated as text; numbers, booleans and null are literals.

use serde_json::{Map, Value};

/// The value at a dotted path (`data.session_id`), if present.
pub fn lookup<'v>(input: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(input, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Renders `{…}` placeholders as text; `None` if one is missing or not a scalar.
pub fn render_str(template: &str, input: &Value, now: i64) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        out.push_str(&scalar_text(&placeholder(
            &rest[start + 1..end],
            input,
            now,
        )?)?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Renders a payload template; `None` if a placeholder is missing.
pub fn render_value(template: &Value, input: &Value, now: i64) -> Option<Value> {
    Some(match template {
        Value::String(text) => match single_placeholder(text) {
            Some(path) => placeholder(path, input, now)?,
            None => Value::String(render_str(text, input, now)?),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, input, now))
                .collect::<Option<_>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Some((k.clone(), render_value(v, input, now)?)))
                .collect::<Option<Map<_, _>>>()?,
        ),
        literal => literal.clone(),
    })
}

/// Whether every placeholder in a template is well-formed (`{` … `}` with a non-empty path).
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in `{template}`"))?
            + start;
        let path = &rest[start + 1..end];
        if path.is_empty() || path.contains('{') || path.contains(char::is_whitespace) {
            return Err(format!("`{{{path}}}` is not a field path in `{template}`"));
        }
        rest = &rest[end + 1..];
    }
    Ok(())
}

fn single_placeholder(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    (!inner.contains(['{', '}'])).then_some(inner)
}

fn placeholder(path: &str, input: &Value, now: i64) -> Option<Value> {
    match path {
        "now" => Some(Value::from(now)),
        "now_iso" => Some(Value::String(iso8601(now))),
        _ => lookup(input, path).cloned(),
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `2026-11-25T12:00:00Z` for Unix seconds (proleptic Gregorian, UTC).
pub fn iso8601(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qr_webhook() -> Value {
        json!({"event": "qr_code_generated", "data": {
            "workspace_id": 7, "session_id": "webjs_7_1700000000_abcd1234",
            "qr_code": "data:image/png;base64,iVBOR", "expires_in": 60, "qr_count": 1
        }})
    }

    #[test]
    fn the_shipped_qr_mapping_keeps_workspace_id_a_number() {
        let template = json!({
            "qr_code_base64": "{data.qr_code}", "expires_in_seconds": 300,
            "workspace_id": "{data.workspace_id}", "account_id": "{data.session_id}",
            "session_id": "{data.session_id}", "timestamp": "{now_iso}"
        });
        let out = render_value(&template, &qr_webhook(), 1_764_072_000).unwrap();
        assert_eq!(
            out,
            json!({
                "qr_code_base64": "data:image/png;base64,iVBOR", "expires_in_seconds": 300,
                "workspace_id": 7, "account_id": "webjs_7_1700000000_abcd1234",
                "session_id": "webjs_7_1700000000_abcd1234", "timestamp": "2025-11-25T12:00:00Z"
            })
        );
        assert_eq!(
            render_str("private-workspace.{data.workspace_id}", &qr_webhook(), 0).as_deref(),
            Some("private-workspace.7")
        );
    }

    #[test]
    fn a_missing_or_non_scalar_field_renders_nothing() {
        assert_eq!(render_str("x.{data.nope}", &qr_webhook(), 0), None);
        assert_eq!(render_str("x.{data}", &qr_webhook(), 0), None);
        assert_eq!(
            render_value(&json!({"a": "{data.nope}"}), &qr_webhook(), 0),
            None
        );
    }

    #[test]
    fn templates_are_checked_for_well_formed_placeholders() {
        assert!(check_template("private-workspace.{data.workspace_id}").is_ok());
        for bad in ["a.{data", "a.{}", "{a {b}}", "{a b}"] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn iso_dates_are_utc_and_correct_across_leap_years() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
