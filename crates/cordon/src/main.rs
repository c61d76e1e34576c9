//! The `cordon` binary: parse arguments, install logging, run the chosen subcommand.

mod cli;
mod serve;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => serve::run(args),
    }
}
