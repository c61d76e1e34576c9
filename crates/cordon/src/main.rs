//! The `cordon` binary: parse arguments, install logging, run the chosen subcommand.

mod admin;
mod analytics;
mod cli;
mod config_file;
mod healthcheck;
mod otel;
mod serve;

use clap::Parser;

/// glibc's malloc keeps each 19 MiB argon2 work area in per-thread arenas and
/// grew the server to ~350 MiB after a few dozen sign-ups; mimalloc returns
/// such blocks to the OS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => {
            raise_open_files_limit();
            serve::run(*args)
        }
        cli::Command::Audit(args) => std::process::exit(cordon_audit::run(args)),
        cli::Command::Bench(args) => {
            raise_open_files_limit();
            std::process::exit(cordon_bench::main(args))
        }
        cli::Command::Admin(args) => admin::run(args),
        cli::Command::Analytics(args) => analytics::run(args),
        cli::Command::Healthcheck(args) => std::process::exit(healthcheck::run(&args)),
    }
}

/// Servers and load generators hold one descriptor per socket; the usual soft
/// limit of 1024 would cap them far below what the machine can carry.
fn raise_open_files_limit() {
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("cordon: could not raise the open-files limit: {error}");
    }
}
