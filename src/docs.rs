//! What `fleetgate` prints about itself, generated so it cannot drift: the configuration's JSON
//! Schema, shell completions and the manual page (both from the CLI's definition).

use clap::CommandFactory;
use std::io::Write;
use std::process::ExitCode;

/// `fleetgate --version`: the crate's version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("FLEETGATE_COMMIT"),
    ")"
);

/// `fleetgate schema`.
pub fn schema() -> anyhow::Result<ExitCode> {
    print(format!("{:#}\n", fleetgate::config::schema::schema()).as_bytes())
}

/// `fleetgate completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cli = crate::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli, "fleetgate", &mut script);
    print(&script)
}

/// `fleetgate man`.
pub fn man() -> anyhow::Result<ExitCode> {
    let mut page = Vec::new();
    clap_mangen::Man::new(crate::Cli::command()).render(&mut page)?;
    print(&page)
}

fn print(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    std::io::stdout().write_all(bytes)?;
    Ok(ExitCode::SUCCESS)
}
