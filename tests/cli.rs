//! What the binary prints about itself: the configuration's JSON Schema (which the shipped
//! `gateway.yaml` names on its first line and validates against), shell completions, the manual
//! page and the version with its commit.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `fleetgate ARGS`'s standard output (it must succeed).
fn fleetgate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetgate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fleetgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn schema() -> Value {
    serde_json::from_str(&fleetgate(&["schema"])).unwrap()
}

/// `text` (YAML) as JSON, for the schema validator.
fn yaml(text: &str) -> Value {
    let tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
    serde_json::to_value(tree).unwrap()
}

/// Every schema error of `instance`, as `path: message`.
fn errors(instance: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn the_committed_schema_is_what_the_binary_prints() {
    let committed = std::fs::read_to_string(root().join("gateway.schema.json")).unwrap();
    assert!(
        committed == fleetgate(&["schema"]),
        "gateway.schema.json is stale: run `cargo run -- schema > gateway.schema.json`"
    );
}

#[test]
fn the_shipped_gateway_yaml_names_the_schema_and_validates_against_it() {
    let text = std::fs::read_to_string(root().join("gateway.yaml")).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("# yaml-language-server: $schema=gateway.schema.json")
    );
    assert_eq!(errors(&yaml(&text)), Vec::<String>::new());
}

#[test]
fn the_schema_refuses_unknown_keys_and_wrong_types_but_takes_placeholders() {
    let base = "listeners: { hub: { listen: \"127.0.0.1:8080\" } }\nhub:\n  listener: hub\n  apps:\n    - { id: a, key: k, secret: s, MAX: 1 }\n";
    let unknown = errors(&yaml(base));
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].starts_with("/hub"), "{unknown:?}");
    let typed = base.replace("MAX: 1", "max_connections: many");
    assert_eq!(errors(&yaml(&typed)).len(), 1);
    let placeholder = base.replace("MAX: 1", "max_connections: \"${HUB_MAX:-100}\"");
    assert_eq!(errors(&yaml(&placeholder)), Vec::<String>::new());
}

#[test]
fn completions_and_the_manual_page_come_from_the_cli() {
    let bash = fleetgate(&["completions", "bash"]);
    assert!(
        bash.contains("_fleetgate()") && bash.contains("validate"),
        "{bash}"
    );
    let checked = Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .arg("/dev/stdin")
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bash.as_bytes())?;
            child.wait()
        })
        .unwrap();
    assert!(checked.success(), "bash -n refuses the completion script");
    assert!(fleetgate(&["completions", "zsh"]).starts_with("#compdef fleetgate"));
    assert!(fleetgate(&["completions", "fish"]).contains("complete -c fleetgate"));
    let man = fleetgate(&["man"]);
    assert!(man.contains(".TH fleetgate 1"), "{man}");
    assert!(man.contains("validate"), "{man}");
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(head.status.success(), "the tests run in a git checkout");
    let commit = String::from_utf8(head.stdout).unwrap();
    let version = fleetgate(&["--version"]);
    let expected = format!(
        "fleetgate {} ({})\n",
        env!("CARGO_PKG_VERSION"),
        commit.trim()
    );
    assert_eq!(version, expected);
}

#[test]
fn the_run_script_refuses_to_invent_secrets_without_dev() {
    let out = Command::new("bash")
        .arg("scripts/run.sh")
        .current_dir(root())
        .env_remove("WHATSAPP_HMAC_SECRET")
        .env_remove("REVERB_APP_ID")
        .env_remove("REVERB_APP_KEY")
        .env_remove("REVERB_APP_SECRET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("WHATSAPP_HMAC_SECRET") && stderr.contains("--dev"),
        "{stderr}"
    );
}
