//! Raw serde mirror of `gateway.yaml`. Nothing outside `config/` sees these types.
//!
//! Scalars that need parsing (durations, sizes, addresses) stay `String` here so that validation can
//! report every bad value at once, each with its YAML path, instead of stopping at the first.
//! Unknown keys are collected by `serde_ignored` (see `mod.rs`) for the same reason.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    pub threads: Option<usize>,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub listeners: BTreeMap<String, RawListener>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawGroup>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
pub struct RawAdmin {
    pub listen: String,
}

#[derive(Debug, Deserialize)]
pub struct RawListener {
    pub listen: String,
}

#[derive(Debug, Deserialize)]
pub struct RawGroup {
    #[serde(default)]
    pub instances: Vec<RawInstance>,
    pub connect_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub health: Option<RawHealth>,
    pub routing: Option<RawRouting>,
}

#[derive(Debug, Deserialize)]
pub struct RawInstance {
    pub name: String,
    pub addr: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawHealth {
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRouting {
    pub sources: Option<Vec<String>>,
    pub header: Option<String>,
    pub body_limit: Option<String>,
    pub assign: Option<String>,
    pub pins: Option<BTreeMap<u64, String>>,
    pub when_instance_down: Option<String>,
    pub when_no_workspace: Option<String>,
    pub learned_sessions: Option<RawLearned>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLearned {
    pub capacity: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub struct RawRoute {
    pub name: String,
    pub listener: String,
    pub path_prefix: Option<String>,
    pub upstream: String,
    pub treatment: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub write_timeout: Option<String>,
    pub max_body: Option<String>,
    pub deny: Option<Vec<String>>,
}
