//! Raw serde mirror of `gateway.yaml`. Nothing outside `config/` sees these types.
//!
//! Scalars that need parsing (durations, sizes, addresses) stay `String` here so that validation can
//! report every bad value at once, each with its YAML path, instead of stopping at the first.
//! Unknown keys are collected by `serde_ignored` (see `mod.rs`) for the same reason.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawConfig {
    pub threads: Option<usize>,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub listeners: BTreeMap<String, RawListener>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawGroup>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub hub: Option<RawHub>,
    pub access_log: Option<RawAccessLog>,
    pub log: Option<RawLog>,
    pub cluster: Option<RawCluster>,
    pub shutdown: Option<RawShutdown>,
    pub spool: Option<RawSpool>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawSpool {
    pub enabled: Option<bool>,
    pub dir: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub max_bytes: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub max_age: Option<String>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawCluster {
    pub redis: String,
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawAccessLog {
    pub enabled: Option<bool>,
    pub path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawShutdown {
    #[serde(default, deserialize_with = "with_unit")]
    pub drain_delay: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub grace_period: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawHub {
    pub listener: String,
    #[serde(default)]
    pub apps: Vec<RawApp>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawApp {
    pub id: String,
    pub key: String,
    pub secret: String,
    pub allowed_origins: Option<Vec<String>>,
    pub max_connections: Option<usize>,
    pub client_events: Option<bool>,
    #[serde(default, deserialize_with = "with_unit")]
    pub max_message_size: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub activity_timeout: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub ping_interval: Option<String>,
    pub max_connections_per_ip: Option<usize>,
    pub max_channels: Option<usize>,
    pub max_subscriptions_per_second: Option<u32>,
    pub client_events_per_second: Option<u32>,
    pub api_requests_per_second: Option<u32>,
    pub max_batch_size: Option<usize>,
    pub max_channels_per_event: Option<usize>,
    pub max_channel_name_length: Option<usize>,
    #[serde(default, deserialize_with = "with_unit")]
    pub write_timeout: Option<String>,
    pub presence: Option<RawPresence>,
    #[serde(default)]
    pub webhooks: Vec<RawAppWebhook>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawAppWebhook {
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub filter: Option<RawWebhookFilter>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawWebhookFilter {
    pub channel_name_starts_with: Option<String>,
    pub channel_name_ends_with: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawPresence {
    pub max_members: Option<usize>,
    #[serde(default, deserialize_with = "with_unit")]
    pub max_user_info: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawAdmin {
    pub listen: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawListener {
    pub listen: String,
    pub tls: Option<RawTls>,
    #[serde(default, deserialize_with = "with_unit")]
    pub header_timeout: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub idle_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    #[serde(default, deserialize_with = "with_unit")]
    pub max_head_size: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub max_uri_length: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub proxy_protocol: Option<bool>,
    pub health: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawTls {
    pub dir: String,
    pub h2: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawGroup {
    #[serde(default)]
    pub instances: Vec<RawInstance>,
    #[serde(default, deserialize_with = "with_unit")]
    pub connect_timeout: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub idle_timeout: Option<String>,
    pub health: Option<RawHealth>,
    pub routing: Option<RawRouting>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawInstance {
    pub name: String,
    pub addr: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawHealth {
    pub path: Option<String>,
    pub expect: Option<RawExpect>,
    #[serde(default, deserialize_with = "with_unit")]
    pub interval: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub timeout: Option<String>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
}

/// `expect: any`, `expect: 2xx`, `expect: 204` or a list of statuses and classes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawExpect {
    One(RawStatus),
    Many(Vec<RawStatus>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawStatus {
    Code(u16),
    Text(String),
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawRouting {
    pub sources: Option<Vec<String>>,
    pub header: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub body_limit: Option<String>,
    pub assign: Option<String>,
    pub pins: Option<BTreeMap<u64, String>>,
    pub when_instance_down: Option<String>,
    pub when_no_workspace: Option<String>,
    pub learned_sessions: Option<RawLearned>,
    pub workspace_limits: Option<RawWorkspaceLimits>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawWorkspaceLimits {
    pub rate: Option<u32>,
    pub burst: Option<u32>,
    pub concurrency: Option<u32>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawLearned {
    pub capacity: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawRoute {
    pub name: String,
    pub listener: String,
    pub path_prefix: Option<String>,
    pub upstream: String,
    pub treatment: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub connect_timeout: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub read_timeout: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub write_timeout: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub body_timeout: Option<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub max_body: Option<String>,
    pub deny: Option<Vec<String>>,
    pub webhook: Option<RawWebhook>,
    pub require_token: Option<Vec<RawTokenRule>>,
    pub allow_from: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawTokenRule {
    pub header: String,
    pub bearer: Option<bool>,
    #[serde(default)]
    pub tokens: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawWebhook {
    pub scheme: String,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default, deserialize_with = "with_unit")]
    pub tolerance: Option<String>,
    pub duplicates: Option<RawDuplicates>,
    pub instances: Option<RawWebhookInstances>,
    #[serde(default)]
    pub publish: Vec<RawPublishRule>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawPublishRule {
    pub event: String,
    pub app: Option<String>,
    pub channel: String,
    pub name: String,
    pub payload: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RawDuplicates {
    #[serde(default, deserialize_with = "with_unit")]
    pub ttl: Option<String>,
    pub capacity: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawWebhookInstances {
    pub group: String,
    pub public_url: Option<String>,
}

/// A duration or size as written. A bare number (`64`) is kept as its text instead of failing
/// deserialization, so validation refuses it with the "write the unit" message at its path,
/// alongside every other problem.
fn with_unit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a value with its unit, e.g. 5s or 64MiB")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(Text)
}
