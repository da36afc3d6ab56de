//! `hub.apps[i].webhooks`: where an app's webhooks go and which events each wants.

use super::super::raw::{RawAppWebhook, RawWebhookFilter};
use super::super::types::AppWebhook;
use super::Problems;
use crate::pusher::webhook::Kind;
use std::collections::HashSet;

/// Headers fleetgate writes itself on every webhook request.
const RESERVED: [&str; 6] = [
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "x-pusher-key",
    "x-pusher-signature",
];

pub(super) fn webhooks(p: &mut Problems, at: &str, raw: Vec<RawAppWebhook>) -> Vec<AppWebhook> {
    let mut urls = HashSet::new();
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, hook)| {
            let at = format!("{at}.webhooks[{i}]");
            if !urls.insert(hook.url.clone()) {
                p.push(
                    format!("{at}.url"),
                    "the app has another webhook to this URL",
                );
            }
            webhook(p, &at, hook)
        })
        .collect()
}

fn webhook(p: &mut Problems, at: &str, raw: RawAppWebhook) -> Option<AppWebhook> {
    let events = events(p, at, &raw.events);
    let headers = headers(p, at, &raw.headers);
    let filter = raw.filter.unwrap_or_default();
    let RawWebhookFilter {
        channel_name_starts_with,
        channel_name_ends_with,
    } = filter;
    let Some((authority, target)) = split_url(&raw.url) else {
        p.push(
            format!("{at}.url"),
            format!("`{}` is not an http:// URL with a host (https is not supported: use http:// on the private network)", raw.url),
        );
        return None;
    };
    Some(AppWebhook {
        url: raw.url,
        authority,
        target,
        events,
        headers,
        channel_name_starts_with,
        channel_name_ends_with,
    })
}

/// `(host:port, path and query)` of an `http://` URL (port 80 when not written).
fn split_url(url: &str) -> Option<(String, String)> {
    let uri: http::Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") || uri.host().is_none_or(str::is_empty) {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host();
    let authority = format!("{host}:{}", authority.port_u16().unwrap_or(80));
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Some((authority, target.to_string()))
}

fn events(p: &mut Problems, at: &str, names: &[String]) -> Vec<Kind> {
    if names.is_empty() {
        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        p.push(
            format!("{at}.events"),
            format!("name at least one of: {}", all.join(", ")),
        );
    }
    let mut kinds = Vec::new();
    for name in names {
        match Kind::parse(name) {
            Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
            Some(_) => {}
            None => p.push(
                format!("{at}.events"),
                format!("`{name}` is not an app webhook event"),
            ),
        }
    }
    kinds
}

fn headers(
    p: &mut Problems,
    at: &str,
    raw: &std::collections::BTreeMap<String, String>,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut headers = Vec::new();
    for (name, value) in raw {
        let path = format!("{at}.headers.{name}");
        let parsed = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        );
        match parsed {
            (Ok(name), _) if RESERVED.contains(&name.as_str()) => {
                p.push(path, "fleetgate writes this header itself")
            }
            (Ok(name), Ok(value)) => headers.push((name, value)),
            _ => p.push(path, "is not a valid header name and value"),
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn only_http_urls_with_a_host_are_webhook_urls() {
        let split = |url| split_url(url).map(|(a, t)| format!("{a} {t}"));
        assert_eq!(
            split("http://127.0.0.1:8000/pusher/webhook?x=1").as_deref(),
            Some("127.0.0.1:8000 /pusher/webhook?x=1")
        );
        assert_eq!(split("http://laravel").as_deref(), Some("laravel:80 /"));
        assert_eq!(split("http://[::1]:81/h").as_deref(), Some("[::1]:81 /h"));
        for bad in [
            "https://laravel/h",
            "laravel:80/h",
            "/h",
            "http://u:p@laravel/",
            "",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
