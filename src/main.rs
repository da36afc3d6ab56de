//! The `fleetgate` binary: parses the CLI, sets up logging, calls the library.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fleetgate::config::{self, Config};
use fleetgate::routing;
use fleetgate::signing::{self, Scheme, Secret};
use std::path::PathBuf;
use std::process::ExitCode;

mod allocator;
mod docs;

#[derive(Parser)]
#[command(
    name = "fleetgate",
    version = docs::VERSION,
    about = "Edge gateway for stateful Node fleets"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run(RunArgs),
    /// Check a configuration file and list every problem.
    Validate(ConfigArg),
    /// Show which instance a workspace maps to, and why.
    Route {
        #[command(flatten)]
        config: ConfigArg,
        /// The workspace id.
        #[arg(long)]
        workspace: u64,
        /// The upstream group (default: the first group with routing rules).
        #[arg(long)]
        group: Option<String>,
    },
    /// Sign a webhook body as a sender would; prints the headers for `curl -H`.
    Sign(SignArgs),
    /// The running gateway's webhook spool, through its admin listener: `ls` (depth, bytes,
    /// oldest age and dead letters per route), `replay` (dead letters back in the queue),
    /// `purge` (dead letters deleted).
    Spool {
        #[arg(value_parser = ["ls", "replay", "purge"])]
        action: String,
        #[command(flatten)]
        config: ConfigArg,
        /// One route (default: every route).
        #[arg(long)]
        route: Option<String>,
    },
    /// Print the JSON Schema of gateway.yaml (for editors: see the file's first line).
    Schema,
    /// Print a shell completion script (e.g. `fleetgate completions bash > /etc/bash_completion.d/fleetgate`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; `fleetgate man | man -l -`).
    Man,
}

#[derive(Args)]
struct ConfigArg {
    /// Path to gateway.yaml.
    #[arg(short = 'c', long = "config", default_value = "gateway.yaml")]
    path: PathBuf,
}

#[derive(Args)]
struct SignArgs {
    /// hex-timestamp-body, standard-webhooks or github.
    #[arg(long)]
    scheme: String,
    /// The environment variable holding the secret (keeps it out of shell history).
    #[arg(long, value_name = "VAR", conflicts_with = "secret")]
    secret_env: Option<String>,
    /// The secret itself (prefer --secret-env).
    #[arg(long, value_name = "TEXT")]
    secret: Option<String>,
    /// The exact body bytes to sign; `-` reads standard input.
    #[arg(long, value_name = "FILE|-")]
    body_file: PathBuf,
    /// Unix seconds (default: now).
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    timestamp: Option<i64>,
    /// The webhook-id (standard-webhooks only; default: msg_fleetgate).
    #[arg(long)]
    id: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Zero-downtime upgrade: take over the listening sockets of the fleetgate running now (then
    /// send it SIGQUIT; it hands them over and drains).
    #[arg(short = 'u', long)]
    upgrade: bool,
    /// The Unix socket the listening sockets are handed over on (same for old and new process).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/tmp/fleetgate_upgrade.sock"
    )]
    upgrade_socket: PathBuf,
    /// Do not apply gateway.yaml when it changes on disk: reload only on SIGHUP or
    /// `POST /admin/reload` (as nginx).
    #[arg(long)]
    no_watch: bool,
}

fn main() -> ExitCode {
    allocator::return_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Validate(arg)) => validate(&arg),
        Some(Command::Route {
            config,
            workspace,
            group,
        }) => route(&config, workspace, group.as_deref()),
        Some(Command::Sign(args)) => sign(&args),
        Some(Command::Spool {
            action,
            config,
            route,
        }) => spool(&action, &config, route.as_deref()),
        Some(Command::Schema) => docs::schema(),
        Some(Command::Completions { shell }) => docs::completions(shell),
        Some(Command::Man) => docs::man(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fleetgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(arg: &ConfigArg) -> Result<Config, ExitCode> {
    config::load(&arg.path).map_err(|e| {
        eprint!("{}: {e}", arg.path.display());
        ExitCode::FAILURE
    })
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = match load(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    // Operational logs go to stderr; stdout is the access log's (`access_log.path: stdout`).
    fleetgate::logging::init(&config.log);
    raise_open_file_limit();
    let options = fleetgate::server::Options {
        upgrade: args.upgrade,
        upgrade_socket: args.upgrade_socket,
        watch: !args.no_watch,
    };
    fleetgate::server::run(config, args.config.path, options).context("starting the gateway")?;
    Ok(ExitCode::SUCCESS)
}

/// Raises the soft limit on open descriptors to the hard one (as nginx's
/// `worker_rlimit_nofile` would be set by hand): every client connection, upstream connection
/// and hub client is a descriptor, and the soft limit is often a fraction of the hard one.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "open file limit raised"),
            Err(e) => tracing::warn!(soft, hard, error = %e, "open file limit could not be raised"),
        },
        Ok((soft, _)) => tracing::info!(limit = soft, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "open file limit unknown"),
    }
}

/// Checks the file, then loads every TLS listener's certificates as `run` would.
fn validate(arg: &ConfigArg) -> anyhow::Result<ExitCode> {
    let config = match load(arg) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let mut ok = true;
    for listener in &config.listeners {
        let Some(tls) = &listener.tls else { continue };
        if let Err(e) = fleetgate::tls::load_dir(&tls.dir) {
            eprintln!("{}: listener `{}`: {e}", arg.path.display(), listener.name);
            ok = false;
        }
    }
    warn_missing_health_routes(&config, &arg.path)?;
    Ok(if ok {
        println!("configuration OK");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Asks every instance its group's health path once, as the checker will, and warns where the
/// answer is 404: the app has no such route, so the check only proves it answers (or, with a
/// strict `expect`, marks it down). Unreachable instances are noted; neither fails validation.
fn warn_missing_health_routes(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answers = runtime.block_on(fleetgate::health::survey(&config.groups));
    for (group, instance, answer) in answers {
        let at = format!("{}: upstreams.{}.health", file.display(), group.name);
        let (path, who) = (
            &group.health.path,
            format!("`{}` ({})", instance.name, instance.addr),
        );
        match answer {
            Ok(404) if group.health.expect.passes(404) => eprintln!(
                "warning: {at}.path: {path} answers 404 on {who}: no such route, so the check \
                 proves only that the app answers (health.expect: any). Point health.path at the \
                 app's health route if it has one (Laravel 11+: /up)."
            ),
            Ok(404) => eprintln!(
                "warning: {at}.path: {path} answers 404 on {who}, which health.expect does not \
                 accept: the instance will be marked down. Point health.path at a route the app \
                 has (Laravel 11+: /up) or set health.expect: any."
            ),
            Ok(_) => {}
            Err(e) => eprintln!("note: {at}: {who} not checked now ({e})"),
        }
    }
    Ok(())
}

fn route(arg: &ConfigArg, workspace: u64, group: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = match load(arg) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let group = match group {
        Some(name) => config
            .group(name)
            .with_context(|| format!("no upstream group named `{name}`"))?,
        None => config
            .groups
            .iter()
            .find(|g| g.routing.is_some())
            .context("no upstream group has routing rules")?,
    };
    let rules = group
        .routing
        .as_ref()
        .with_context(|| format!("group `{}` has no routing rules", group.name))?;
    let names: Vec<String> = group.instances.iter().map(|i| i.name.clone()).collect();
    let decision =
        routing::by_rule(rules, &names, workspace).context("the group has no instances")?;
    let instance = &group.instances[decision.instance];
    let why = match decision.kind {
        routing::Kind::Pin => format!("pinned in upstreams.{}.routing.pins", group.name),
        routing::Kind::Modulo => format!(
            "modulo: {workspace} % {} = {}",
            names.len(),
            decision.instance
        ),
        routing::Kind::Rendezvous => format!("rendezvous over {} instances", names.len()),
        other => other.as_str().to_string(),
    };
    println!(
        "workspace {workspace} -> {} ({}) [{}]",
        instance.name,
        instance.addr,
        decision.kind.as_str()
    );
    println!("why: {why}");
    println!("note: a session learned on another instance (POST /api/sessions, webhooks) overrides this at run time");
    Ok(ExitCode::SUCCESS)
}

fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let scheme = Scheme::parse(&args.scheme).with_context(|| {
        let names: Vec<_> = Scheme::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "unknown scheme `{}` (expected one of: {})",
            args.scheme,
            names.join(", ")
        )
    })?;
    let secret = sign_secret(args, scheme)?;
    let body = read_body(&args.body_file)?;
    let timestamp = match args.timestamp {
        Some(timestamp) => timestamp,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            .try_into()?,
    };
    if args.id.is_some() && scheme != Scheme::StandardWebhooks {
        eprintln!("note: --id is used by standard-webhooks only");
    }
    let headers = signing::sign(scheme, &secret, &body, timestamp, args.id.as_deref());
    let mut hint = String::from("# curl -X POST URL -H 'Content-Type: application/json'");
    for (name, value) in &headers {
        println!("{name}: {value}");
        hint.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
    }
    let file = args.body_file.to_string_lossy();
    println!("{hint} --data-binary {}", shell_quote(&format!("@{file}")));
    Ok(ExitCode::SUCCESS)
}

/// The secret from `--secret-env VAR` (preferred) or `--secret TEXT`.
fn sign_secret(args: &SignArgs, scheme: Scheme) -> anyhow::Result<Secret> {
    let (text, origin) = match (&args.secret_env, &args.secret) {
        (Some(var), _) => match std::env::var(var) {
            Ok(text) => (text, var.as_str()),
            Err(std::env::VarError::NotPresent) => {
                anyhow::bail!("environment variable {var} is not set")
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                anyhow::bail!("environment variable {var} is not UTF-8")
            }
        },
        (None, Some(text)) => (text.clone(), "--secret"),
        (None, None) => anyhow::bail!("no secret: pass --secret-env VAR (or --secret TEXT)"),
    };
    Secret::from_config(scheme, &text).map_err(|message| anyhow::anyhow!("{origin} {message}"))
}

/// The exact bytes of `path`, or of standard input for `-`.
fn read_body(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)
            .context("reading the body from standard input")?;
        return Ok(body);
    }
    std::fs::read(path).with_context(|| format!("reading the body from {}", path.display()))
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `fleetgate spool ls|replay|purge`: asks the running gateway's admin listener.
fn spool(action: &str, arg: &ConfigArg, route: Option<&str>) -> anyhow::Result<ExitCode> {
    use std::io::{Read, Write};
    let config = match load(arg) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let admin = config
        .admin
        .context("the spool is reached through the admin listener: set admin.listen")?;
    let query = route
        .map(|r| {
            let encoded =
                percent_encoding::utf8_percent_encode(r, percent_encoding::NON_ALPHANUMERIC);
            format!("?route={encoded}")
        })
        .unwrap_or_default();
    let request = match action {
        "ls" => "GET /admin/spool".to_string(),
        other => format!("POST /admin/spool/{other}{query}"),
    };
    let mut stream =
        std::net::TcpStream::connect_timeout(&admin, std::time::Duration::from_secs(2))
            .with_context(|| format!("no gateway answers on its admin listener {admin}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        stream,
        "{request} HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let ok = head.starts_with("HTTP/1.1 200");
    let shown = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_string());
    println!("{shown}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
