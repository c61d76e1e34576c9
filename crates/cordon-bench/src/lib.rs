//! cordon-bench: the load generator behind `cordon bench`.
//!
//! It registers (or logs in) N users, opens C connections for each over a
//! ramp, has every user send M messages (one at a time per user, all users at
//! once), and measures time to `agent_started` and `agent_completed`, events
//! per second and the server's resident memory. It is also an isolation test:
//! every frame a connection receives is checked against the user it belongs
//! to, and a single cross-user event aborts the run with an error.
//!
//! With `--reconnect-every N` each user's one socket is dropped every N
//! events and resumed from its last `seq`, and what it received must be
//! exactly the user's stored log: no gap, no duplicate.
//!
//! With `--abuse` the users are measured twice, alone and while one noisy
//! tenant floods sockets, messages, history searches and sign-ins; the
//! report compares their p50/p99.
//!
//! It speaks only `cordon-protocol` (plus plain HTTP for auth and `/metrics`).

mod abuse;
pub mod args;
mod client;
mod memory;
mod reconnect;
pub mod report;
mod run;
mod stats;

pub use abuse::AbuseReport;
pub use args::BenchArgs;
pub use memory::parse_gauge;
pub use report::BenchReport;
pub use run::{BenchError, run};

/// Runs the bench from command-line arguments and prints the report; returns the exit code.
pub fn main(args: BenchArgs) -> i32 {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cordon bench: could not start the runtime: {error}");
            return 2;
        }
    };
    let json = args.json;
    match runtime.block_on(run(args)) {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_table());
            }
            i32::from(!report.passed())
        }
        Err(error) => {
            eprintln!("cordon bench: {error}");
            1
        }
    }
}
