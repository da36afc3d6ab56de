//! `upstreams.NAME.health`: what is checked, how often, and which answers count as alive.

use super::super::raw::{RawExpect, RawHealth, RawStatus};
use super::super::types::{defaults, Expect, HealthConfig, StatusMatch};
use super::Problems;

pub(super) fn health(p: &mut Problems, at: &str, raw: RawHealth) -> HealthConfig {
    let path = raw
        .path
        .unwrap_or_else(|| defaults::HEALTH_PATH.to_string());
    if !path.starts_with('/') {
        p.push(format!("{at}.health.path"), "must start with /");
    }
    let threshold = |p: &mut Problems, key: &str, value: Option<u32>, default: u32| match value {
        Some(0) => {
            p.push(format!("{at}.health.{key}"), "must be at least 1");
            default
        }
        Some(n) => n,
        None => default,
    };
    HealthConfig {
        expect: expect(p, at, raw.expect),
        path,
        interval: p.duration(
            format!("{at}.health.interval"),
            &raw.interval,
            defaults::HEALTH_INTERVAL,
        ),
        timeout: p.duration(
            format!("{at}.health.timeout"),
            &raw.timeout,
            defaults::HEALTH_TIMEOUT,
        ),
        healthy_threshold: threshold(
            p,
            "healthy_threshold",
            raw.healthy_threshold,
            defaults::HEALTHY_THRESHOLD,
        ),
        unhealthy_threshold: threshold(
            p,
            "unhealthy_threshold",
            raw.unhealthy_threshold,
            defaults::UNHEALTHY_THRESHOLD,
        ),
    }
}

/// `expect`: absent or `any` → [`Expect::Any`]; otherwise one status or class, or a list of them.
fn expect(p: &mut Problems, at: &str, raw: Option<RawExpect>) -> Expect {
    let at = format!("{at}.health.expect");
    let (list, single) = match raw {
        None => return Expect::Any,
        Some(RawExpect::One(RawStatus::Text(text))) if text == "any" => return Expect::Any,
        Some(RawExpect::One(one)) => (vec![one], true),
        Some(RawExpect::Many(list)) if list.is_empty() => {
            p.push(
                at,
                "is an empty list (write `any`, a status such as 200, or a class such as 2xx)",
            );
            return Expect::Any;
        }
        Some(RawExpect::Many(list)) => (list, false),
    };
    let mut matches = Vec::with_capacity(list.len());
    for (i, raw) in list.into_iter().enumerate() {
        match status_match(&raw) {
            Ok(m) => matches.push(m),
            Err(message) if single => p.push(at.clone(), message),
            Err(message) => p.push(format!("{at}[{i}]"), message),
        }
    }
    Expect::Statuses(matches)
}

fn status_match(raw: &RawStatus) -> Result<StatusMatch, String> {
    let text = match raw {
        RawStatus::Code(code) => return exact(*code),
        RawStatus::Text(text) => text.trim(),
    };
    if let Ok(code) = text.parse::<u16>() {
        return exact(code);
    }
    let class = text
        .strip_suffix("xx")
        .or_else(|| text.strip_suffix("XX"))
        .and_then(|digit| digit.parse::<u16>().ok())
        .filter(|class| (1..=5).contains(class));
    class.map(StatusMatch::Class).ok_or_else(|| {
        format!(
            "`{text}` is not a status (write `any`, a status such as 200, or a class such as 2xx)"
        )
    })
}

fn exact(code: u16) -> Result<StatusMatch, String> {
    match code {
        100..=599 => Ok(StatusMatch::Exact(code)),
        _ => Err(format!("{code} is not an HTTP status (100-599)")),
    }
}
