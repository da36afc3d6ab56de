//! What ships beside the binary, checked: the Grafana dashboard's `job` / `instance` variables and
//! the filters every query carries, the Prometheus alert rules (`promtool check rules` and their
//! unit tests, `promtool test rules`), and the systemd unit (`systemd-analyze verify`) with its
//! environment file. promtool (Debian's `prometheus`) and systemd-analyze (Debian's `systemd`)
//! are installed by `bash scripts/deps.sh --test`; without them these tests fail, never skip.

mod common;
use common::process::run_bounded;
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const UNIT: &str = "deploy/systemd/fleetgate.service";
/// Where README's install steps put the binary and the configuration.
const BINARY: &str = "/usr/local/bin/fleetgate";
const CONFIG: &str = "/etc/fleetgate/gateway.yaml";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What a finished command printed.
struct Ran {
    success: bool,
    status: String,
    output: String,
}

/// Runs `program` with `args` in the repository root, killed (and failed) after `limit`. A
/// missing program fails naming the script that installs it.
fn run(program: &str, args: &[&str], limit: Duration) -> Ran {
    let mut command = Command::new(program);
    command.args(args).current_dir(root());
    let out = run_bounded(command, None, limit);
    Ran {
        success: out.status.success(),
        status: out.status.to_string(),
        output: String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr),
    }
}

// ---- Grafana dashboard ----

/// The metric selectors (`name{…}` or a bare `name`) of fleetgate's and the process collector's
/// metrics in a PromQL expression, with their matchers (empty for a bare name).
fn selectors(expr: &str) -> Vec<(String, String)> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find(|c: char| ident(c)) {
        let word_len = rest[at..]
            .find(|c: char| !ident(c))
            .unwrap_or(rest.len() - at);
        let word = &rest[at..at + word_len];
        rest = &rest[at + word_len..];
        if !(word.starts_with("fleetgate_") || word.starts_with("process_")) {
            continue;
        }
        let mut matchers = String::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').expect("unclosed {");
            matchers = inner[..end].to_string();
            assert!(!matchers.contains('{'), "unbalanced braces in {expr}");
            rest = &inner[end + 1..];
        }
        found.push((word.to_string(), matchers));
    }
    found
}

#[test]
fn the_selector_scanner_sees_bare_and_filtered_metrics() {
    let expr = r#"sum(rate(fleetgate_a_total{x="fleetgate_no"}[1m])) / process_b{} + fleetgate_c"#;
    assert_eq!(
        selectors(expr),
        [
            ("fleetgate_a_total".into(), r#"x="fleetgate_no""#.into()),
            ("process_b".into(), String::new()),
            ("fleetgate_c".into(), String::new()),
        ]
    );
}

/// The dashboard's template variable `name`.
fn variable<'d>(dashboard: &'d Value, name: &str) -> &'d Value {
    dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no dashboard variable `{name}`"))
}

/// A query variable's query, whichever way Grafana stored it.
fn variable_query(var: &Value) -> &str {
    var["query"]["query"]
        .as_str()
        .or(var["query"].as_str())
        .unwrap_or_else(|| panic!("no query in {var}"))
}

#[test]
fn the_dashboard_has_job_and_instance_variables() {
    let dashboard: Value =
        serde_json::from_str(&read("grafana/dashboards/fleetgate.json")).unwrap();
    let job = variable(&dashboard, "job");
    let instance = variable(&dashboard, "instance");
    for (var, query) in [
        (job, "label_values(fleetgate_build_info, job)"),
        (
            instance,
            r#"label_values(fleetgate_build_info{job=~"$job"}, instance)"#,
        ),
    ] {
        assert_eq!(var["type"], "query", "{var}");
        assert_eq!(variable_query(var), query, "{var}");
        assert_eq!(var["datasource"]["uid"], "${datasource}", "{var}");
    }
    assert_eq!(instance["multi"], true, "{instance}");
    assert_eq!(instance["includeAll"], true, "{instance}");
    // The datasource comes first: the job and instance queries run on it.
    assert_eq!(dashboard["templating"]["list"][0]["name"], "datasource");
}

#[test]
fn every_dashboard_query_filters_on_job_and_instance() {
    let dashboard: Value =
        serde_json::from_str(&read("grafana/dashboards/fleetgate.json")).unwrap();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    let mut targets = 0;
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            targets += 1;
            let expr = target["expr"].as_str().unwrap();
            let title = &panel["title"];
            assert!(
                expr.contains(r#"job=~"$job""#) && expr.contains(r#"instance=~"$instance""#),
                "{title}: {expr}"
            );
            // Each selector, not just one of them: `a{job…} / b` would still mix in other jobs.
            let found = selectors(expr);
            assert!(!found.is_empty(), "{title}: no metric in {expr}");
            for (metric, matchers) in found {
                assert!(
                    matchers.contains(r#"job=~"$job""#)
                        && matchers.contains(r#"instance=~"$instance""#),
                    "{title}: {metric} is not filtered on job and instance in {expr}"
                );
            }
        }
    }
    assert!(
        targets >= 30,
        "only {targets} queries: panels went missing?"
    );
}

// ---- Prometheus alert rules ----

#[test]
fn promtool_checks_the_alert_rules() {
    let ran = run(
        "promtool",
        &["check", "rules", "grafana/alerts.yaml"],
        Duration::from_secs(60),
    );
    assert!(
        ran.success,
        "promtool check rules grafana/alerts.yaml: {}\n{}",
        ran.status, ran.output
    );
}

#[test]
fn promtool_unit_tests_of_the_alert_rules_pass() {
    let ran = run(
        "promtool",
        &["test", "rules", "grafana/alerts.test.yaml"],
        Duration::from_secs(120),
    );
    assert!(
        ran.success && ran.output.contains("SUCCESS"),
        "promtool test rules grafana/alerts.test.yaml: {}\n{}",
        ran.status,
        ran.output
    );
}

/// Every alert of alerts.yaml, with its rule.
fn alerts() -> Vec<(String, Yaml)> {
    let rules = yaml("grafana/alerts.yaml");
    let mut found = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            if let Some(name) = rule["alert"].as_str() {
                found.push((name.to_string(), rule.clone()));
            }
        }
    }
    found
}

#[test]
fn every_alert_is_labelled_annotated_and_seen_firing_by_the_unit_tests() {
    let alerts = alerts();
    let names: BTreeSet<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in [
        "FleetgateDown",
        "FleetgateInstanceDown",
        "FleetgateWebhookRejectionsRising",
        "FleetgateSpoolGrowing",
        "FleetgateHubSlowConsumers",
        "FleetgateConfigReloadFailing",
    ] {
        assert!(names.contains(wanted), "{wanted} missing from alerts.yaml");
    }
    for (name, rule) in &alerts {
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning" | "info")),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            let text = rule["annotations"][annotation].as_str().unwrap_or("");
            assert!(!text.trim().is_empty(), "{name}: no {annotation}");
        }
    }
    // The unit tests name only real alerts, and see each one fire at least once.
    let tests = yaml("grafana/alerts.test.yaml");
    assert_eq!(tests["rule_files"][0], "alerts.yaml");
    let mut fired = BTreeSet::new();
    for case in tests["tests"].as_sequence().expect("tests") {
        for check in case["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = check["alertname"].as_str().unwrap();
            assert!(
                names.contains(name),
                "alerts.test.yaml tests unknown {name}"
            );
            if check["exp_alerts"]
                .as_sequence()
                .is_some_and(|a| !a.is_empty())
            {
                fired.insert(name);
            }
        }
    }
    assert_eq!(fired, names, "alerts never seen firing in alerts.test.yaml");
}

// ---- systemd unit ----

/// The unit's `Key=value` settings, in order (comments and section headers left out).
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';', '[']))
        .map(|l| {
            let (key, value) = l.split_once('=').unwrap_or_else(|| panic!("{l}"));
            (key.trim().to_string(), value.trim().to_string())
        })
        .collect()
}

fn setting(settings: &[(String, String)], key: &str) -> String {
    let values: Vec<&String> = settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        values.len(),
        1,
        "{key} set {} times in {UNIT}",
        values.len()
    );
    values[0].clone()
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let unit = read(UNIT);
    let exec_start = format!("ExecStart={BINARY} ");
    assert_eq!(
        unit.matches(&exec_start).count(),
        1,
        "{UNIT}: {exec_start}…"
    );
    // verify refuses an ExecStart whose binary does not exist: point it at the one just built.
    let built = format!("ExecStart={} ", env!("CARGO_BIN_EXE_fleetgate"));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("fleetgate.service");
    std::fs::write(&copy, unit.replace(&exec_start, &built)).unwrap();
    let ran = run(
        "systemd-analyze",
        &["verify", copy.to_str().unwrap()],
        Duration::from_secs(60),
    );
    // verify exits 0 on unknown keys and unparsable values (it ignores them): any line about
    // the unit is a failure too.
    let about_unit: Vec<&str> = ran
        .output
        .lines()
        .filter(|l| l.contains("fleetgate.service"))
        .collect();
    assert!(
        ran.success && about_unit.is_empty(),
        "systemd-analyze verify {UNIT}: {}\n{}",
        ran.status,
        ran.output
    );
}

#[test]
fn the_binary_takes_the_units_command_line() {
    let settings = unit_settings(&read(UNIT));
    let exec_start = setting(&settings, "ExecStart");
    assert_eq!(exec_start, format!("{BINARY} run -c {CONFIG}"));
    // The unit's arguments, with a configuration that does not exist: a usage error would exit
    // 2; the gateway itself exits 1, naming the file it cannot read.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gateway.yaml");
    let args: Vec<&str> = exec_start
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a == CONFIG {
                missing.to_str().unwrap()
            } else {
                a
            }
        })
        .collect();
    let ran = run(
        env!("CARGO_BIN_EXE_fleetgate"),
        &args,
        Duration::from_secs(30),
    );
    assert_eq!(ran.status, "exit status: 1", "{args:?}: {}", ran.output);
    assert!(
        ran.output.contains("cannot read"),
        "{args:?}: {}",
        ran.output
    );
}

/// `300ms`, `5s`, `2m`, `1h` (the forms gateway.yaml and systemd share).
fn duration(text: &str) -> Duration {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("duration {text}"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => panic!("duration {text}"),
    }
}

#[test]
fn the_unit_reloads_with_sighup_and_outwaits_the_shutdown() {
    let settings = unit_settings(&read(UNIT));
    // fleetgate does not speak sd_notify: `notify` would time out the start.
    assert_eq!(setting(&settings, "Type"), "simple");
    assert_eq!(setting(&settings, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(setting(&settings, "KillSignal"), "SIGTERM");
    // SIGTERM: drain_delay, then grace_period (plus pingora's last second) before the exit;
    // systemd must not SIGKILL the process before that.
    let shutdown = &yaml("gateway.yaml")["shutdown"];
    let needed = duration(shutdown["drain_delay"].as_str().unwrap())
        + duration(shutdown["grace_period"].as_str().unwrap())
        + Duration::from_secs(1);
    let stop = duration(&setting(&settings, "TimeoutStopSec"));
    assert!(stop > needed, "TimeoutStopSec {stop:?} <= {needed:?}");
    // The spool's directory is the unit's state directory, the working directory too.
    assert_eq!(setting(&settings, "StateDirectory"), "fleetgate");
    assert_eq!(setting(&settings, "WorkingDirectory"), "/var/lib/fleetgate");
    assert_eq!(setting(&settings, "ProtectSystem"), "strict");
    assert_eq!(
        setting(&settings, "EnvironmentFile"),
        "-/etc/fleetgate/fleetgate.env"
    );
}

/// The variables gateway.yaml reads (`${NAME}` or `${NAME:-default}`) outside comments, and
/// whether each has a default.
fn config_variables(text: &str) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            rest = &rest[at + 2..];
            let end = rest.find('}').expect("unclosed ${");
            let inside = &rest[..end];
            let (name, default) = match inside.split_once(":-") {
                Some((name, _)) => (name, true),
                None => (inside, false),
            };
            found.push((name.to_string(), default));
        }
    }
    found
}

#[test]
fn the_environment_file_example_names_every_variable_of_gateway_yaml() {
    let example = read("deploy/systemd/fleetgate.env.example");
    let set = |line: &str, name: &str| line.starts_with(&format!("{name}="));
    let variables = config_variables(&read("gateway.yaml"));
    assert!(
        variables.iter().any(|(n, _)| n == "WHATSAPP_HMAC_SECRET"),
        "{variables:?}"
    );
    for (name, has_default) in variables {
        let lines: Vec<&str> = example.lines().collect();
        let required = lines.iter().any(|l| set(l, &name));
        let optional = lines.iter().any(|l| set(l.trim_start_matches('#'), &name));
        assert!(optional, "{name} is not in fleetgate.env.example");
        // A variable without a default refuses to start when unset: it is not commented out.
        assert!(
            has_default || required,
            "{name} is required but commented out"
        );
    }
}
