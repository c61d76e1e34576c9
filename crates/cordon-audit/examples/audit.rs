//! Runs `cordon audit` standalone (same arguments as the `cordon audit` subcommand).

use clap::Parser;

#[derive(Parser)]
#[command(name = "cordon-audit")]
struct Cli {
    #[command(flatten)]
    args: cordon_audit::AuditArgs,
}

fn main() {
    std::process::exit(cordon_audit::run(Cli::parse().args));
}
