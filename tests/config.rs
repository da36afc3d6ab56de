//! `gateway.yaml` as a contract: the shipped file, the defaults, every problem with its YAML path,
//! `${VAR}` interpolation, the `validate` / `route` commands of the real binary, and Laravel's
//! `workspace_id % N` reproduced through a parsed config.

use fleetgate::config::{self, Config, ConfigError, Expect, Group, StatusMatch, Treatment};
use fleetgate::routing::{self, Assign, DownPolicy, Kind, NoWorkspacePolicy, Source};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.yaml");

// ---------------------------------------------------------------------------------------------
// helpers

fn shipped_text() -> String {
    std::fs::read_to_string(SHIPPED).expect("read the shipped gateway.yaml")
}

/// Every `${NAME}` the text refers to, so the shipped file keeps loading once it needs secrets.
fn referenced_vars(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    names
}

/// An environment in which every variable is set (to a non-empty value).
fn any_var_set(_: &str) -> Option<String> {
    Some("test-value".to_string())
}

fn no_vars(_: &str) -> Option<String> {
    None
}

fn shipped() -> Config {
    config::parse(&shipped_text(), &any_var_set)
        .unwrap_or_else(|e| panic!("the shipped gateway.yaml must be valid:\n{e}"))
}

fn parse_ok(text: &str) -> Config {
    config::parse(text, &no_vars).unwrap_or_else(|e| panic!("expected a valid config:\n{e}"))
}

fn parse_err(text: &str, env: &dyn Fn(&str) -> Option<String>) -> ConfigError {
    match config::parse(text, env) {
        Ok(_) => panic!("expected configuration problems in:\n{text}"),
        Err(e) => e,
    }
}

/// Problem path → messages found there.
fn problems_by_path(error: &ConfigError) -> HashMap<&str, Vec<&str>> {
    let mut map: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in &error.problems {
        map.entry(p.path.as_str()).or_default().push(&p.message);
    }
    map
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn instance_names(group: &Group) -> Vec<&str> {
    group.instances.iter().map(|i| i.name.as_str()).collect()
}

fn temp_config(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .prefix("gateway-")
        .suffix(".yaml")
        .tempfile()
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.flush().unwrap();
    file
}

/// Runs the real binary with every variable the config refers to set.
fn fleetgate(args: &[&str], config_path: &Path, config_text: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetgate"));
    cmd.args(args).arg("-c").arg(config_path);
    for name in referenced_vars(config_text) {
        cmd.env(name, "test-value");
    }
    cmd.output().expect("run the fleetgate binary")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The shipped file with one line's text replaced (the replacement must happen exactly once).
fn shipped_with(from: &str, to: &str) -> String {
    let text = shipped_text();
    assert_eq!(text.matches(from).count(), 1, "`{from}` in gateway.yaml");
    text.replacen(from, to, 1)
}

/// A file with many independent problems; each entry of [`BROKEN_PATHS`] is one of them.
const BROKEN: &str = r#"
listeners:
  fleet:
    listen: 127.0.0.1:3000
    adress: 127.0.0.1:3000
upstreams:
  node:
    instances:
      - { name: node-1, addr: 127.0.0.1:3001 }
      - { name: node-2, addr: localhost:3002 }
      - { name: node-1, addr: 127.0.0.1:3003 }
    connect_timeout: 5 seconds
    routing:
      asign: modulo
      pins: { 7: node-9 }
routes:
  - name: api
    listener: fleet
    upstream: node
    treatmnt: workspace
    max_body: 64
  - name: other
    listener: fleet
    path_prefix: /other/
    upstream: nodes
"#;

const BROKEN_PATHS: [&str; 8] = [
    "listeners.fleet.adress",
    "upstreams.node.instances[1].addr",
    "upstreams.node.instances[2].name",
    "upstreams.node.connect_timeout",
    "upstreams.node.routing.asign",
    "upstreams.node.routing.pins.7",
    "routes[0].treatmnt",
    "routes[0].max_body",
];
const BROKEN_ROUTE_PATH: &str = "routes[1].upstream";

// ---------------------------------------------------------------------------------------------
// 1. the shipped gateway.yaml

#[test]
fn the_shipped_gateway_yaml_loads_with_the_reference_deployment() {
    let config = shipped();

    assert_eq!(config.admin, Some(addr("127.0.0.1:9901")));
    assert_eq!(config.listeners.len(), 3);
    assert_eq!(
        config.listener("fleet").map(|l| l.addr),
        Some(addr("127.0.0.1:3000"))
    );
    assert_eq!(
        config.listener("edge").map(|l| l.addr),
        Some(addr("0.0.0.0:8088"))
    );
    assert_eq!(
        config.listener("hub").map(|l| l.addr),
        Some(addr("0.0.0.0:8080")),
        "Reverb's port"
    );
    let hub = config.hub.as_ref().expect("the hub");
    assert_eq!(hub.listener, "hub");
    assert_eq!(hub.apps.len(), 1);

    assert_eq!(config.groups.len(), 2);
    let node = config.group("node").expect("group node");
    let fleet: Vec<(&str, SocketAddr)> = node
        .instances
        .iter()
        .map(|i| (i.name.as_str(), i.addr))
        .collect();
    assert_eq!(
        fleet,
        [
            ("node-1", addr("127.0.0.1:3001")),
            ("node-2", addr("127.0.0.1:3002")),
            ("node-3", addr("127.0.0.1:3003")),
            ("node-4", addr("127.0.0.1:3004")),
        ],
        "node instances, in Laravel's WHATSAPP_INSTANCE_1..4 order"
    );
    assert!(node.routing.is_some(), "group node routes by workspace");

    let laravel = config.group("laravel").expect("group laravel");
    assert_eq!(instance_names(laravel), ["laravel"]);
    assert_eq!(laravel.instances[0].addr, addr("127.0.0.1:8000"));
}

#[test]
fn the_shipped_laravel_check_is_up_and_passes_any_answer_below_500() {
    // Laravel 11+ answers /up; older apps answer 404 there, which must not mark Laravel down.
    let config = shipped();
    let laravel = &config.group("laravel").unwrap().health;
    assert_eq!(
        (laravel.path.as_str(), &laravel.expect),
        ("/up", &Expect::Any)
    );
    for alive in [200, 204, 302, 401, 404, 429] {
        assert!(laravel.expect.passes(alive), "{alive}");
    }
    for down in [500, 502, 503] {
        assert!(!laravel.expect.passes(down), "{down}");
    }
    let node = &config.group("node").unwrap().health;
    assert_eq!(
        (node.path.as_str(), &node.expect),
        ("/health", &Expect::Any)
    );
}

/// MINIMAL with `expect: {value}` in the node group's health section.
fn with_expect(value: &str) -> String {
    MINIMAL.replacen(
        "  node:\n",
        &format!("  node:\n    health:\n      expect: {value}\n"),
        1,
    )
}

#[test]
fn health_expect_takes_any_a_status_a_class_or_a_list() {
    let expect = |value: &str| {
        parse_ok(&with_expect(value)).groups[0]
            .health
            .expect
            .clone()
    };
    use StatusMatch::{Class, Exact};
    assert_eq!(expect("any"), Expect::Any);
    assert_eq!(expect("2xx"), Expect::Statuses(vec![Class(2)]));
    assert_eq!(expect("204"), Expect::Statuses(vec![Exact(204)]));
    assert_eq!(
        expect("[200, 3xx, '404']"),
        Expect::Statuses(vec![Exact(200), Class(3), Exact(404)])
    );
    let strict = expect("2xx");
    assert!(strict.passes(200) && strict.passes(299));
    assert!(!strict.passes(404) && !strict.passes(301) && !strict.passes(500));
}

#[test]
fn a_bad_health_expect_is_reported_at_its_path() {
    for (value, path) in [
        ("[]", "upstreams.node.health.expect"),
        ("6xx", "upstreams.node.health.expect"),
        ("[200, 99]", "upstreams.node.health.expect[1]"),
        ("[2xx, sometimes]", "upstreams.node.health.expect[1]"),
    ] {
        let error = parse_err(&with_expect(value), &no_vars);
        let problems = problems_by_path(&error);
        assert!(problems.contains_key(path), "{value}: {problems:?}");
        assert_eq!(problems.len(), 1, "{value}: {problems:?}");
    }
}

#[test]
fn the_shipped_idle_timeout_stays_below_nodes_five_second_keep_alive() {
    for group in &shipped().groups {
        assert!(
            group.idle_timeout < Duration::from_secs(5),
            "upstreams.{}.idle_timeout is {:?}",
            group.name,
            group.idle_timeout
        );
    }
}

#[test]
fn the_shipped_node_api_route_is_a_workspace_route_that_denies_the_unauthenticated_paths() {
    let config = shipped();
    let route = config
        .routes
        .iter()
        .find(|r| r.name == "node-api")
        .expect("route node-api");
    assert_eq!(route.listener, "fleet");
    assert_eq!(route.path_prefix, "/");
    assert_eq!(config.groups[route.group].name, "node");
    assert_eq!(route.treatment, Treatment::Workspace);
    assert_eq!(route.deny, ["/cleanup/", "/remoteauth/", "/api/internal/"]);

    let laravel = config
        .routes
        .iter()
        .find(|r| r.name == "laravel")
        .expect("route laravel");
    assert_eq!(laravel.listener, "edge");
    assert_eq!(config.groups[laravel.group].name, "laravel");
    assert_eq!(laravel.treatment, Treatment::Balance);
    assert!(laravel.deny.is_empty());
}

#[test]
fn the_shipped_file_loads_from_disk_through_load() {
    // `load` reads `${VAR}`s from the process environment: only run it while the file needs none.
    if referenced_vars(&shipped_text()).is_empty() {
        let config = config::load(Path::new(SHIPPED)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.routes.len(), shipped().routes.len());
    }
}

#[test]
fn a_missing_file_is_one_problem_naming_the_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("no-such-gateway.yaml");
    let error = config::load(&path).unwrap_err();
    assert_eq!(error.problems.len(), 1);
    assert_eq!(error.problems[0].path, "");
    assert!(
        error.problems[0].message.contains("no-such-gateway.yaml"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. defaults

const MINIMAL: &str = r#"
listeners:
  fleet: { listen: 127.0.0.1:3000 }
upstreams:
  node:
    instances:
      - { name: node-1, addr: 127.0.0.1:3001 }
    routing: {}
routes:
  - { name: api, listener: fleet, upstream: node, treatment: workspace }
  - { name: plain, listener: fleet, path_prefix: /plain/, upstream: node }
"#;

#[test]
fn defaults_are_the_documented_values() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.admin, None, "no admin listener unless configured");
    assert!(config.threads >= 1);

    let group = config.group("node").unwrap();
    assert_eq!(group.connect_timeout, Duration::from_secs(2));
    assert_eq!(group.idle_timeout, Duration::from_secs(4));
    assert_eq!(group.health.path, "/health");
    assert_eq!(
        group.health.expect,
        Expect::Any,
        "alive = answers HTTP below 500"
    );
    assert_eq!(group.health.interval, Duration::from_secs(5));
    assert_eq!(group.health.timeout, Duration::from_secs(2));
    assert_eq!(group.health.healthy_threshold, 1);
    assert_eq!(group.health.unhealthy_threshold, 2);

    let routing = group.routing.as_ref().unwrap();
    assert_eq!(routing.header, "x-workspace-id");
    assert_eq!(routing.body_limit, 1024 * 1024);
    assert_eq!(
        routing.sources,
        [Source::Header, Source::Session, Source::Query, Source::Body]
    );
    assert_eq!(routing.assign, Assign::Modulo);
    assert!(routing.pins.is_empty());
    assert_eq!(routing.when_instance_down, DownPolicy::Reject);
    assert_eq!(routing.when_no_workspace, NoWorkspacePolicy::Reject);
    assert_eq!(routing.learned_capacity, 100_000);

    let api = &config.routes[0];
    assert_eq!(api.path_prefix, "/");
    assert_eq!(api.treatment, Treatment::Workspace);
    assert_eq!(api.connect_timeout, Duration::from_secs(2));
    assert_eq!(api.read_timeout, Duration::from_secs(65));
    assert_eq!(api.write_timeout, Duration::from_secs(65));
    assert_eq!(api.max_body, 64 * 1024 * 1024);
    assert_eq!(api.deny, ["/cleanup/", "/remoteauth/", "/api/internal/"]);

    let plain = &config.routes[1];
    assert_eq!(
        plain.treatment,
        Treatment::Balance,
        "treatment defaults to balance"
    );
    assert!(
        plain.deny.is_empty(),
        "balance routes deny nothing by default"
    );
    assert_eq!(plain.read_timeout, Duration::from_secs(65));
    assert_eq!(plain.max_body, 64 * 1024 * 1024);
}

#[test]
fn defaults_are_the_constants_in_config_types_defaults() {
    use fleetgate::config::types::defaults;
    let config = parse_ok(MINIMAL);
    let group = config.group("node").unwrap();
    let routing = group.routing.as_ref().unwrap();
    let api = &config.routes[0];
    assert_eq!(group.connect_timeout, defaults::CONNECT_TIMEOUT);
    assert_eq!(group.idle_timeout, defaults::IDLE_TIMEOUT);
    assert_eq!(group.health.path, defaults::HEALTH_PATH);
    assert_eq!(group.health.interval, defaults::HEALTH_INTERVAL);
    assert_eq!(group.health.timeout, defaults::HEALTH_TIMEOUT);
    assert_eq!(group.health.healthy_threshold, defaults::HEALTHY_THRESHOLD);
    assert_eq!(
        group.health.unhealthy_threshold,
        defaults::UNHEALTHY_THRESHOLD
    );
    assert_eq!(routing.header, defaults::WORKSPACE_HEADER);
    assert_eq!(routing.body_limit, defaults::BODY_LIMIT);
    assert_eq!(routing.learned_capacity, defaults::LEARNED_CAPACITY);
    assert_eq!(api.read_timeout, defaults::READ_TIMEOUT);
    assert_eq!(api.write_timeout, defaults::WRITE_TIMEOUT);
    assert_eq!(api.max_body, defaults::MAX_BODY);
    assert_eq!(api.deny, defaults::WORKSPACE_DENY);
}

#[test]
fn the_shipped_file_states_the_defaults_it_documents() {
    // gateway.yaml writes every default out; parsing it must give the same values as leaving
    // them out.
    let (shipped, minimal) = (shipped(), parse_ok(MINIMAL));
    let (s, m) = (
        shipped.group("node").unwrap(),
        minimal.group("node").unwrap(),
    );
    assert_eq!(s.connect_timeout, m.connect_timeout);
    assert_eq!(s.idle_timeout, m.idle_timeout);
    assert_eq!(s.health, m.health);
    assert_eq!(s.routing, m.routing);
    let api = shipped
        .routes
        .iter()
        .find(|r| r.name == "node-api")
        .unwrap();
    let m_api = &minimal.routes[0];
    assert_eq!(
        (
            api.connect_timeout,
            api.read_timeout,
            api.write_timeout,
            api.max_body,
            &api.deny
        ),
        (
            m_api.connect_timeout,
            m_api.read_timeout,
            m_api.write_timeout,
            m_api.max_body,
            &m_api.deny
        )
    );
}

#[test]
fn a_route_without_connect_timeout_inherits_its_groups() {
    let text = MINIMAL.replace(
        "    routing: {}",
        "    connect_timeout: 300ms\n    routing: {}",
    );
    let config = parse_ok(&text);
    assert_eq!(config.routes[0].connect_timeout, Duration::from_millis(300));
}

// ---------------------------------------------------------------------------------------------
// 3. unknown keys and every problem at once

#[test]
fn unknown_keys_are_errors_at_their_yaml_path() {
    let text = r#"
listner: {}
listeners:
  fleet: { listen: 127.0.0.1:3000, adress: 127.0.0.1:3000 }
upstreams:
  node:
    instances:
      - { name: node-1, addr: 127.0.0.1:3001, weight: 2 }
    health: { pth: /health }
    routing:
      asign: modulo
      learned_sessions: { capacty: 10 }
routes:
  - { name: api, listener: fleet, upstream: node, treatmnt: workspace }
"#;
    let error = parse_err(text, &no_vars);
    let found = problems_by_path(&error);
    for path in [
        "listner",
        "listeners.fleet.adress",
        "upstreams.node.instances[0].weight",
        "upstreams.node.health.pth",
        "upstreams.node.routing.asign",
        "upstreams.node.routing.learned_sessions.capacty",
        "routes[0].treatmnt",
    ] {
        assert_eq!(
            found.get(path),
            Some(&vec!["unknown key"]),
            "{path} in:\n{error}"
        );
    }
    assert_eq!(error.problems.len(), 7, "{error}");
}

#[test]
fn every_problem_in_a_file_is_reported_at_once_each_with_its_path() {
    let error = parse_err(BROKEN, &no_vars);
    let found = problems_by_path(&error);
    for path in BROKEN_PATHS.iter().chain([&BROKEN_ROUTE_PATH]) {
        assert_eq!(
            found.get(path).map(Vec::len),
            Some(1),
            "exactly one problem at {path} in:\n{error}"
        );
    }
    let message = |path: &str| found[path][0];
    assert!(message("upstreams.node.connect_timeout").contains("5 seconds"));
    assert!(message("routes[0].max_body").contains("`64`"));
    assert!(message("upstreams.node.instances[1].addr").contains("localhost:3002"));
    assert!(message("upstreams.node.instances[2].name").contains("node-1"));
    assert!(message("upstreams.node.routing.pins.7").contains("node-9"));
    assert!(message(BROKEN_ROUTE_PATH).contains("nodes"));
    assert!(message("routes[0].treatmnt").contains("unknown key"));
}

#[test]
fn the_error_text_lists_every_problem_as_path_colon_message() {
    let error = parse_err(BROKEN, &no_vars);
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "{} problems in configuration:\n",
            error.problems.len()
        )),
        "{text}"
    );
    for problem in &error.problems {
        let line = format!("  {}: {}\n", problem.path, problem.message);
        assert!(text.contains(&line), "{line:?} in:\n{text}");
    }
}

#[test]
fn unknown_keys_are_still_reported_when_a_required_key_is_missing() {
    let text = r#"
listeners:
  fleet: { listen: 127.0.0.1:3000, adress: 127.0.0.1:3000 }
upstreams:
  node:
    instances:
      - { name: node-1 }
"#;
    let error = parse_err(text, &no_vars);
    let found = problems_by_path(&error);
    assert!(found.contains_key("listeners.fleet.adress"), "{error}");
    let missing = found
        .get("upstreams.node.instances[0]")
        .unwrap_or_else(|| panic!("missing addr at its path in:\n{error}"));
    assert!(missing[0].contains("addr"), "{error}");
}

#[test]
fn bare_numbers_are_refused_for_durations_and_sizes() {
    let text = MINIMAL.replace(
        "    routing: {}",
        "    idle_timeout: 4\n    routing: { body_limit: 1024 }",
    );
    let found_error = parse_err(&text, &no_vars);
    let found = problems_by_path(&found_error);
    assert!(
        found.contains_key("upstreams.node.idle_timeout"),
        "{found_error}"
    );
    assert!(
        found.contains_key("upstreams.node.routing.body_limit"),
        "{found_error}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. ${VAR}

const WITH_VARS: &str = r#"
listeners:
  fleet: { listen: "${FLEET_LISTEN}" }
upstreams:
  node:
    instances:
      - { name: node-1, addr: 127.0.0.1:3001 }
    health: { path: "/health/${HEALTH_TOKEN}" }
    routing: {}
routes:
  - { name: api, listener: fleet, upstream: node, treatment: workspace }
"#;

#[test]
fn a_set_variable_is_substituted() {
    let env = |name: &str| match name {
        "FLEET_LISTEN" => Some("127.0.0.1:3100".to_string()),
        "HEALTH_TOKEN" => Some("s3cr3t".to_string()),
        _ => None,
    };
    let config = config::parse(WITH_VARS, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.listeners[0].addr, addr("127.0.0.1:3100"));
    assert_eq!(config.groups[0].health.path, "/health/s3cr3t");
}

#[test]
fn an_unset_variable_is_an_error_never_an_empty_string() {
    let env = |name: &str| (name == "FLEET_LISTEN").then(|| "127.0.0.1:3100".to_string());
    let error = parse_err(WITH_VARS, &env);
    let found = problems_by_path(&error);
    let at = found
        .get("upstreams.node.health.path")
        .unwrap_or_else(|| panic!("problem at the variable's path in:\n{error}"));
    assert!(
        at.iter()
            .any(|m| m.contains("HEALTH_TOKEN") && m.contains("not set")),
        "{error}"
    );
    assert!(
        error
            .problems
            .iter()
            .all(|p| !p.message.contains("FLEET_LISTEN")),
        "only the unset variable is reported:\n{error}"
    );
}

#[test]
fn every_unset_variable_is_reported_at_once() {
    let error = parse_err(WITH_VARS, &no_vars);
    let found = problems_by_path(&error);
    assert!(
        found["listeners.fleet.listen"]
            .iter()
            .any(|m| m.contains("FLEET_LISTEN")),
        "{error}"
    );
    assert!(
        found["upstreams.node.health.path"]
            .iter()
            .any(|m| m.contains("HEALTH_TOKEN")),
        "{error}"
    );
}

#[test]
fn a_variable_set_to_the_empty_string_is_an_error_too() {
    let env = |name: &str| match name {
        "FLEET_LISTEN" => Some("127.0.0.1:3100".to_string()),
        _ => Some(String::new()),
    };
    let error = parse_err(WITH_VARS, &env);
    let found = problems_by_path(&error);
    assert!(
        found
            .get("upstreams.node.health.path")
            .is_some_and(|m| m.iter().any(|m| m.contains("HEALTH_TOKEN"))),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. the real binary

#[test]
fn validate_accepts_the_shipped_file() {
    let out = fleetgate(&["validate"], Path::new(SHIPPED), &shipped_text());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).contains("configuration OK"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn validate_exits_1_and_lists_every_problem_path() {
    let file = temp_config(BROKEN);
    let out = fleetgate(&["validate"], file.path(), BROKEN);
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert!(!stdout(&out).contains("configuration OK"));
    let err = stderr(&out);
    for path in BROKEN_PATHS.iter().chain([&BROKEN_ROUTE_PATH]) {
        assert!(err.contains(&format!("  {path}: ")), "{path} in:\n{err}");
    }
}

#[test]
fn route_workspace_7_goes_to_node_4_by_modulo() {
    let out = fleetgate(
        &["route", "--workspace", "7"],
        Path::new(SHIPPED),
        &shipped_text(),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("workspace 7 -> node-4 (127.0.0.1:3004) [modulo]"),
        "{text}"
    );
    assert!(text.contains("why: modulo: 7 % 4 = 3"), "{text}");
}

#[test]
fn route_workspace_4_goes_to_node_1_by_modulo() {
    let out = fleetgate(
        &["route", "--workspace", "4", "--group", "node"],
        Path::new(SHIPPED),
        &shipped_text(),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("workspace 4 -> node-1 (127.0.0.1:3001) [modulo]"),
        "{text}"
    );
}

#[test]
fn route_reports_a_pin_over_modulo() {
    let text = shipped_with("pins: {}", "pins: { 7: node-2 }");
    let file = temp_config(&text);
    let out = fleetgate(&["route", "--workspace", "7"], file.path(), &text);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("workspace 7 -> node-2 (127.0.0.1:3002) [pin]"),
        "{printed}"
    );
    assert!(printed.contains("why: pinned in upstreams.node.routing.pins"));
}

#[test]
fn route_reports_rendezvous_when_assign_is_rendezvous() {
    let text = shipped_with("assign: modulo  ", "assign: rendezvous");
    let file = temp_config(&text);
    let out = fleetgate(&["route", "--workspace", "7"], file.path(), &text);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let printed = stdout(&out);
    let first = printed.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("workspace 7 -> node-") && first.ends_with("[rendezvous]"),
        "{printed}"
    );
    assert!(
        printed.contains("why: rendezvous over 4 instances"),
        "{printed}"
    );
}

#[test]
fn route_on_a_group_without_routing_rules_fails() {
    let out = fleetgate(
        &["route", "--workspace", "7", "--group", "laravel"],
        Path::new(SHIPPED),
        &shipped_text(),
    );
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert!(stderr(&out).contains("laravel"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------------
// 6. modulo compatibility with Laravel

fn fleet_of(n: usize) -> Config {
    let instances: String = (1..=n)
        .map(|i| {
            format!(
                "      - {{ name: node-{i}, addr: 127.0.0.1:{} }}\n",
                3000 + i
            )
        })
        .collect();
    parse_ok(&format!(
        "listeners:\n  fleet: {{ listen: 127.0.0.1:3000 }}\n\
         upstreams:\n  node:\n    instances:\n{instances}    routing: {{ assign: modulo }}\n\
         routes:\n  - {{ name: api, listener: fleet, upstream: node, treatment: workspace }}\n"
    ))
}

#[test]
fn modulo_is_workspace_id_mod_n_over_the_configured_order() {
    for n in 1..=8usize {
        let config = fleet_of(n);
        let group = config.group("node").unwrap();
        let rules = group.routing.as_ref().unwrap();
        let names = instance_names(group);
        assert_eq!(names.len(), n);
        for ws in 0..=10_000u64 {
            let decision = routing::by_rule(rules, &names, ws).unwrap();
            let expected = (ws % n as u64) as usize;
            assert_eq!(decision.kind, Kind::Modulo, "ws {ws} n {n}");
            assert_eq!(decision.instance, expected, "ws {ws} n {n}");
            // Laravel's WHATSAPP_INSTANCE_{k} is the k-th listed instance, counting from 1.
            assert_eq!(
                group.instances[decision.instance].name,
                format!("node-{}", expected + 1)
            );
        }
    }
}

#[test]
fn connection_counts_on_the_hubs_listener_point_to_the_hub_apps_settings() {
    let text = "listeners:\n  hub: { listen: 127.0.0.1:8080, max_connections: 5, max_connections_per_ip: 2, header_timeout: 5s }\nhub:\n  listener: hub\n  apps:\n    - { id: a, key: k, secret: s }\n";
    let error = parse_err(text, &no_vars);
    let problems = problems_by_path(&error);
    assert_eq!(problems.len(), 2, "{problems:?}");
    for key in ["max_connections", "max_connections_per_ip"] {
        let problem = problems[format!("listeners.hub.{key}").as_str()].join(" ");
        assert!(problem.contains(&format!("hub.apps[].{key}")), "{problem}");
    }
}

#[test]
fn app_webhooks_are_checked_at_their_paths() {
    let text = "listeners: { hub: { listen: \"127.0.0.1:8080\" } }\nspool: { enabled: false }\nhub:\n  listener: hub\n  apps:\n    - id: a\n      key: k\n      secret: s\n      webhooks:\n        - { url: \"https://laravel/hook\", events: [channel_occupied] }\n        - { url: \"http://laravel/hook\", events: [channel_existence], headers: { X-Pusher-Key: forged } }\n        - { url: \"http://laravel/hook\", events: [] }\n";
    let error = parse_err(text, &no_vars);
    let found = problems_by_path(&error);
    let at = |path: &str| found.get(path).cloned().unwrap_or_default();
    assert!(
        at("hub.apps[0].webhooks[0].url")[0].contains("http://"),
        "{error}"
    );
    assert!(
        at("hub.apps[0].webhooks[1].events")[0].contains("channel_existence"),
        "{error}"
    );
    assert!(
        at("hub.apps[0].webhooks[1].headers.X-Pusher-Key")[0].contains("itself"),
        "{error}"
    );
    assert!(
        at("hub.apps[0].webhooks[2].url")[0].contains("another webhook"),
        "{error}"
    );
    assert!(
        at("hub.apps[0].webhooks[2].events")[0].contains("at least one"),
        "{error}"
    );
    assert!(at("hub.apps[0].webhooks")[0].contains("spool"), "{error}");
    assert_eq!(error.problems.len(), 6, "{error}");

    let fine = text
        .replace("spool: { enabled: false }\n", "")
        .replace("https", "http");
    let fine = fine
        .replace(", headers: { X-Pusher-Key: forged }", "")
        .replace("channel_existence", "cache_miss");
    let fine = fine.replace(
        "\n        - { url: \"http://laravel/hook\", events: [] }",
        "",
    );
    let fine = fine.replacen("http://laravel/hook", "http://laravel:8000/first", 1);
    let config = parse_ok(&fine);
    let hooks = &config.hub.unwrap().apps[0].webhooks;
    assert_eq!(hooks.len(), 2);
    assert_eq!(
        (hooks[0].authority.as_str(), hooks[0].target.as_str()),
        ("laravel:8000", "/first")
    );
    assert_eq!(
        (hooks[1].authority.as_str(), hooks[1].target.as_str()),
        ("laravel:80", "/hook")
    );
}

#[test]
fn a_whole_placeholder_takes_the_type_its_key_expects_and_errors_keep_their_path() {
    let text = "listeners: { hub: { listen: \"127.0.0.1:8080\" } }\nhub:\n  listener: hub\n  apps:\n    - id: a\n      key: k\n      secret: \"${SECRET}\"\n      max_connections: ${HUB_MAX}\n      client_events: ${WHISPER}\n      activity_timeout: ${IDLE:-45s}\n      allowed_origins: [\"$${literal}\"]\n";
    let env = |name: &str| {
        let value = match name {
            "SECRET" => "12345",
            "HUB_MAX" => "250",
            "WHISPER" => "true",
            _ => return None,
        };
        Some(value.to_string())
    };
    let config = config::parse(text, &env).unwrap_or_else(|e| panic!("{e}"));
    let app = &config.hub.unwrap().apps[0];
    assert_eq!(app.secret, "12345", "a text key keeps digits as text");
    assert_eq!(app.max_connections, 250);
    assert!(app.client_events);
    assert_eq!(app.activity_timeout, Duration::from_secs(45));
    assert_eq!(app.allowed_origins, ["${literal}"]);

    let bad = |name: &str| {
        (name == "HUB_MAX")
            .then(|| "many".to_string())
            .or_else(|| env(name))
    };
    let error = parse_err(text, &bad);
    let found = problems_by_path(&error);
    assert_eq!(found.len(), 1, "{error}");
    assert!(found.contains_key("hub.apps[0].max_connections"), "{error}");
}

#[test]
fn the_log_section_is_checked_at_its_paths() {
    let text = "log: { format: xml, level: \"fleetgate=loud\" }\n";
    let error = parse_err(text, &no_vars);
    let found = problems_by_path(&error);
    assert!(found["log.format"][0].contains("xml"), "{error}");
    assert!(found["log.level"][0].contains("fleetgate=loud"), "{error}");
    let hub = "listeners: { hub: { listen: \"127.0.0.1:8080\" } }\nhub: { listener: hub, apps: [{ id: a, key: k, secret: s }] }\n";
    let config = parse_ok(&format!(
        "{hub}log: {{ format: json, level: \"fleetgate=debug,warn\" }}\n"
    ));
    assert_eq!(config.log.format, config::LogFormat::Json);
    assert_eq!(config.log.level.as_deref(), Some("fleetgate=debug,warn"));
}
