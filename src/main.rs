//! The `fleetgate` binary: parses the CLI, sets up logging, calls the library.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fleetgate::config::{self, Config};
use fleetgate::routing;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "fleetgate",
    version,
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
}

#[derive(Args)]
struct ConfigArg {
    /// Path to gateway.yaml.
    #[arg(short = 'c', long = "config", default_value = "gateway.yaml")]
    path: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
}

fn main() -> ExitCode {
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLEETGATE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match load(&args.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    fleetgate::server::run(config, args.config.path, Default::default())
        .context("starting the gateway")?;
    Ok(ExitCode::SUCCESS)
}

fn validate(arg: &ConfigArg) -> anyhow::Result<ExitCode> {
    Ok(match load(arg) {
        Ok(_) => {
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    })
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
