//! `cordon bench` arguments.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// WebSocket URL of the server (its HTTP base is derived from it).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// More instances of the same cluster (repeatable): sockets are spread
    /// over `--url` and these, user by user; sign-ups and memory go to `--url`.
    #[arg(long)]
    pub also_url: Vec<String>,
    /// Users to register or log in.
    #[arg(long, default_value_t = 50)]
    pub users: usize,
    /// WebSocket connections opened per user.
    #[arg(long, default_value_t = 1)]
    pub connections_per_user: usize,
    /// Messages each user sends, one after another (all users at once).
    #[arg(long, default_value_t = 1)]
    pub messages: usize,
    /// Seconds over which connections are opened.
    #[arg(long, default_value_t = 0.0)]
    pub ramp: f64,
    /// Keep sending for this many seconds instead of a fixed --messages count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds to hold the connections open (idle, heartbeats only) before sending.
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
    /// PID of the server, to read its resident memory from /proc (else /metrics is used).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Prefix of the bench usernames.
    #[arg(long, default_value = "bench")]
    pub user_prefix: String,
    /// Password of the bench users.
    #[arg(long, default_value = "bench-password-1")]
    pub password: String,
    /// Concurrent registrations/logins (password hashing is deliberately slow).
    #[arg(long, default_value_t = 8)]
    pub auth_concurrency: usize,
    /// Seconds to wait for one run to end before counting it failed.
    #[arg(long, default_value_t = 30.0)]
    pub run_timeout: f64,
    /// Drop each user's socket after every N events it receives and resume
    /// from its last `seq` (`?after_seq=`); one connection per user. Checks
    /// the events received are exactly the user's stored log, and reports
    /// the time from reconnect to the first event.
    #[arg(long)]
    pub reconnect_every: Option<usize>,
    /// Seconds each user waits between sending two messages (from send to
    /// send); without it a user sends its next message as soon as a run ends.
    #[arg(long)]
    pub pace: Option<f64>,
    /// Abuse mode: measure the users for --duration seconds (default 20)
    /// alone, then again while one noisy tenant floods sockets, messages,
    /// history searches and sign-ins, and compare their latency. Run the
    /// server with its default limits.
    #[arg(long)]
    pub abuse: bool,
    /// Abuse mode: messages per second the noisy tenant sends, over all its sockets.
    #[arg(long, default_value_t = 500)]
    pub noisy_rate: u32,
    /// Abuse mode: sockets the noisy tenant tries to hold open (past the server's cap they are refused).
    #[arg(long, default_value_t = 24)]
    pub noisy_sockets: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}
