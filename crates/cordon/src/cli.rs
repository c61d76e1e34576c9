//! Command-line arguments (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cordon_analytics::ClickHouseConfig;
use time::OffsetDateTime;

#[derive(Debug, Parser)]
#[command(
    name = "cordon",
    version,
    about = "A multi-tenant agent execution server with per-user isolated engines."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTP API and WebSocket stream).
    Serve(Box<ServeArgs>),
    /// Audit a repository for single-source-of-truth compliance.
    Audit(cordon_audit::AuditArgs),
    /// Load-test a running server and verify isolation while measuring.
    Bench(cordon_bench::BenchArgs),
    /// Print usage from ClickHouse: runs, tokens and cost per user and model,
    /// errors by code, run durations (what `GET /api/admin/usage` answers).
    Analytics(AnalyticsArgs),
    /// Grant or revoke the admin role (budgets and analytics routes), on the
    /// data dir or database a server uses.
    Admin(AdminArgs),
    /// Ask a running server's `/healthz`: exit 0 when it answers 200, 1
    /// otherwise (a container image's health check: it has no curl).
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to ask [default: http://127.0.0.1:PORT/healthz, PORT from
    /// CORDON_ADDR or PORT as `serve` would listen, else 8080].
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3.0)]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct AnalyticsArgs {
    /// The ClickHouse a server writes to (`http://user:password@host:8123/database`).
    #[arg(long, env = "CORDON_CLICKHOUSE_URL", hide_env_values = true, value_parser = clickhouse_url)]
    pub clickhouse_url: ClickHouseConfig,
    /// Start of the range (RFC 3339) [default: 24 hours before --to].
    #[arg(long, value_parser = rfc3339)]
    pub from: Option<OffsetDateTime>,
    /// End of the range, exclusive (RFC 3339) [default: now].
    #[arg(long, value_parser = rfc3339)]
    pub to: Option<OffsetDateTime>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub action: AdminAction,
    /// The data dir of a SQLite server.
    #[arg(
        long,
        env = "CORDON_DATA_DIR",
        default_value = "./cordon-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// The PostgreSQL database of a server started with --database-url.
    #[arg(long, env = "CORDON_DATABASE_URL", hide_env_values = true, value_parser = database_url, global = true)]
    pub database_url: Option<secrecy::SecretString>,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Make USERNAME an admin.
    Grant { username: String },
    /// Take the admin role from USERNAME.
    Revoke { username: String },
}

/// `--llm`: which model provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LlmChoice {
    /// The built-in deterministic model: no network, no key.
    Offline,
    /// OpenAI or any OpenAI-compatible chat-completions server.
    Openai,
    /// Anthropic Messages API.
    Anthropic,
}

/// `--otlp-user-ids`: what `cordon.user_id` on exported spans is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtlpUserIds {
    /// The first 16 hex digits of the id's SHA-256.
    Hashed,
    /// The user id itself.
    Plain,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080, or 0.0.0.0:$PORT when PORT is set].
    #[arg(long, env = "CORDON_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Port set by container platforms; used when --addr is not given.
    #[arg(long, env = "PORT", hide = true)]
    pub port: Option<u16>,
    /// Directory for the SQLite database and the generated JWT secret.
    #[arg(long, env = "CORDON_DATA_DIR", default_value = "./cordon-data")]
    pub data_dir: PathBuf,
    /// Store in PostgreSQL (`postgres://user:password@host:port/database`)
    /// instead of SQLite in --data-dir; the database is migrated at start-up.
    /// Without --broker-url one instance per database: a second is refused at start-up.
    #[arg(long, env = "CORDON_DATABASE_URL", hide_env_values = true, value_parser = database_url)]
    pub database_url: Option<secrecy::SecretString>,
    /// A NATS server (`nats://host:port`) through which several instances on one
    /// --database-url serve as one: forwarded messages, events and sign-outs.
    #[arg(long, env = "CORDON_BROKER_URL", hide_env_values = true, requires = "database_url", value_parser = broker_url)]
    pub broker_url: Option<secrecy::SecretString>,
    /// HS256 signing secret (at least 32 bytes); generated and kept in the data dir when unset.
    /// Prefer the environment variable: a flag's value is visible to every user in `ps`.
    #[arg(long, env = "CORDON_JWT_SECRET", hide_env_values = true, value_parser = secret_value)]
    pub jwt_secret: Option<secrecy::SecretString>,
    /// Material (at least 32 bytes) of the key users' secrets are sealed with; generated and kept
    /// in the data dir when unset. Several instances on one database need the same one.
    #[arg(long, env = "CORDON_SECRETS_KEY", hide_env_values = true, value_parser = secret_value)]
    pub secrets_key: Option<secrecy::SecretString>,
    /// Seconds between server `ping` frames.
    #[arg(long, env = "CORDON_HEARTBEAT_INTERVAL", default_value_t = 15.0)]
    pub heartbeat_interval: f64,
    /// Seconds without client traffic before a socket is closed.
    #[arg(long, env = "CORDON_IDLE_TIMEOUT", default_value_t = 240.0)]
    pub idle_timeout: f64,
    /// Runs one user may have in flight.
    #[arg(long, env = "CORDON_MAX_RUNS_PER_USER", default_value_t = 2)]
    pub max_runs_per_user: usize,
    /// Sign-up attempts one client address may make per hour (`429 too_many_signups`).
    #[arg(long, env = "CORDON_SIGNUPS_PER_HOUR", default_value_t = 20)]
    pub signups_per_hour: u32,
    /// Sign-up answers `202 accepted` for free and taken names alike (no token; sign in next),
    /// so nobody can learn which names exist.
    #[arg(long, env = "CORDON_QUIET_SIGNUP")]
    pub quiet_signup: bool,
    /// Password hashes queued or running at most; past it sign-ins get `503 busy` with `Retry-After`.
    #[arg(long, env = "CORDON_MAX_PENDING_HASHES", default_value_t = 64)]
    pub max_pending_hashes: usize,
    /// Seconds an HTTP connection may take to send a request's headers, or stay idle between requests.
    #[arg(long, env = "CORDON_HEADER_TIMEOUT", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds a request body may take to arrive (then `408`).
    #[arg(long, env = "CORDON_BODY_TIMEOUT", default_value_t = 30.0)]
    pub body_timeout: f64,
    /// Seconds a socket write may wait for a peer that does not read before the socket is closed.
    #[arg(long, env = "CORDON_WRITE_TIMEOUT", default_value_t = 30.0)]
    pub write_timeout: f64,
    /// Sockets one user may have open; another upgrade gets `429 too_many_connections`.
    #[arg(long, env = "CORDON_MAX_SOCKETS_PER_USER", default_value_t = 8)]
    pub max_sockets_per_user: usize,
    /// Messages one user may send per minute (over the socket and REST together).
    #[arg(long, env = "CORDON_MESSAGES_PER_MINUTE", default_value_t = 120)]
    pub messages_per_minute: u32,
    /// Seconds a run paused for a person's approval waits before it ends `approval_expired`.
    #[arg(long, env = "CORDON_APPROVAL_TTL", default_value_t = 900.0)]
    pub approval_ttl: f64,
    /// Every user's model spend limit per UTC day, in US dollars (none by default; an admin
    /// may set a user's own limits: PUT /api/admin/users/{username}/budget).
    #[arg(long, env = "CORDON_BUDGET_DAILY_USD")]
    pub budget_daily_usd: Option<f64>,
    /// Every user's model spend limit per UTC calendar month, in US dollars.
    #[arg(long, env = "CORDON_BUDGET_MONTHLY_USD")]
    pub budget_monthly_usd: Option<f64>,
    /// Every user's limit of model tokens (input and output) per UTC day.
    #[arg(long, env = "CORDON_BUDGET_DAILY_TOKENS")]
    pub budget_daily_tokens: Option<u64>,
    /// Every user's limit of model tokens (input and output) per UTC calendar month.
    #[arg(long, env = "CORDON_BUDGET_MONTHLY_TOKENS")]
    pub budget_monthly_tokens: Option<u64>,
    /// ClickHouse to write one row per finished run and per model call to, for analytics
    /// (`http://user:password@host:8123/database`; tables are created on start).
    #[arg(long, env = "CORDON_CLICKHOUSE_URL", hide_env_values = true, value_parser = clickhouse_url)]
    pub clickhouse_url: Option<ClickHouseConfig>,
    /// Analytics rows held while ClickHouse is slow or away; past it new rows are dropped
    /// (counted in /metrics as cordon_analytics_rows_dropped_total).
    #[arg(long, env = "CORDON_ANALYTICS_BUFFER_ROWS", default_value_t = cordon_analytics::DEFAULT_BUFFER_ROWS)]
    pub analytics_buffer_rows: usize,
    /// Runs the whole server may have in flight.
    #[arg(long, env = "CORDON_MAX_RUNS_GLOBAL", default_value_t = 1024)]
    pub max_runs_global: usize,
    /// Seconds one agent may run before the run ends with `timeout`.
    #[arg(long, env = "CORDON_AGENT_TIMEOUT", default_value_t = 25.0)]
    pub agent_timeout: f64,
    /// Seconds an engine may stay idle before it is dropped.
    #[arg(long, env = "CORDON_ENGINE_IDLE_TTL", default_value_t = 300.0)]
    pub engine_idle_ttl: f64,
    /// Seconds running runs get to finish on shutdown.
    #[arg(long, env = "CORDON_SHUTDOWN_GRACE", default_value_t = 10.0)]
    pub shutdown_grace: f64,
    /// Days the event log keeps a user's events (resume cursors older than this get `cursor_expired`).
    #[arg(long, env = "CORDON_EVENT_RETENTION", default_value_t = 7.0)]
    pub event_retention: f64,
    /// A proxy (IP or CIDR, repeatable or comma-separated) whose `X-Forwarded-For` names the
    /// client for per-address limits; from any other peer the header is ignored.
    #[arg(long = "trusted-proxy", env = "CORDON_TRUSTED_PROXY", value_delimiter = ',', value_parser = proxy_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Most writes queued for the store; past half of it new runs are refused with `overloaded`.
    #[arg(long, env = "CORDON_WRITE_QUEUE_CAPACITY", default_value_t = cordon_server::DEFAULT_WRITE_QUEUE_CAPACITY)]
    pub write_queue_capacity: usize,
    /// Milliseconds of CPU one history search may use before it is stopped (the tool then tells
    /// the model to try a more distinctive query).
    #[arg(long, env = "CORDON_SEARCH_BUDGET_MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub search_budget_ms: u64,
    /// Milliseconds the offline model takes per step (0 for benchmarks).
    #[arg(long, env = "CORDON_OFFLINE_DELAY_MS", default_value_t = 100)]
    pub offline_delay_ms: u64,
    /// Extra Origin allowed to open /ws and to call /api/chat and /api/agui cross-origin
    /// (repeatable; same-origin is always allowed).
    #[arg(
        long = "allowed-origin",
        env = "CORDON_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Export OpenTelemetry traces (OTLP over HTTP/protobuf) to this collector, e.g.
    /// http://127.0.0.1:4318 (`/v1/traces` is added). Without it no exporter runs.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// `cordon.user_id` on exported spans: `hashed` (SHA-256, first 16 hex digits) or `plain`.
    #[arg(long, env = "CORDON_OTLP_USER_IDS", value_enum, default_value_t = OtlpUserIds::Hashed)]
    pub otlp_user_ids: OtlpUserIds,
    /// Put message contents on exported spans: prompts, answers, tool arguments and results
    /// (off by default: they are users' data).
    #[arg(long, env = "CORDON_OTLP_CONTENT")]
    pub otlp_content: bool,
    /// Spans waiting for export at most; past it new spans are dropped and counted
    /// (`cordon_otel_spans_dropped_total`).
    #[arg(long, env = "CORDON_OTLP_QUEUE_SIZE", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub otlp_queue_size: u64,
    /// Log format.
    #[arg(long, env = "CORDON_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Model provider [default: offline, or `provider` from --llm-config].
    #[arg(long, env = "CORDON_LLM", value_enum)]
    pub llm: Option<LlmChoice>,
    /// Model name [defaults: gpt-4o-mini for openai, claude-3-5-haiku-latest for anthropic].
    #[arg(long, env = "CORDON_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// Provider endpoint, e.g. http://127.0.0.1:11434/v1 for Ollama's OpenAI-compatible API.
    #[arg(long, env = "CORDON_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// Name of the environment variable holding the API key [defaults: OPENAI_API_KEY, ANTHROPIC_API_KEY].
    #[arg(long, env = "CORDON_LLM_API_KEY_ENV")]
    pub llm_api_key_env: Option<String>,
    /// TOML file declaring MCP tool servers (`[mcp_servers.NAME]`) and the tools a person must
    /// approve (`[tools."NAME"] requires_approval = true`); see docs/tools.md.
    #[arg(long, env = "CORDON_CONFIG")]
    pub config: Option<PathBuf>,
    /// TOML file with the remaining model settings (see docs/llm.md); flags override it.
    #[arg(long, env = "CORDON_LLM_CONFIG")]
    pub llm_config: Option<PathBuf>,
    /// Send the API key over plain http:// to a host that is not loopback (refused by default).
    #[arg(long, env = "CORDON_LLM_ALLOW_INSECURE_HTTP")]
    pub llm_allow_insecure_http: bool,
}

fn clickhouse_url(raw: &str) -> Result<ClickHouseConfig, String> {
    ClickHouseConfig::from_url(raw).map_err(|error| error.to_string())
}

fn rfc3339(raw: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|error| format!("not an RFC 3339 time: {error}"))
}

/// A trusted proxy: an address (`10.0.0.7`) or a network (`10.0.0.0/8`).
fn proxy_net(raw: &str) -> Result<ipnet::IpNet, String> {
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{raw}` is neither an IP address nor a CIDR network"))
}

/// A secret from the command line or environment, redacted in `Debug`.
fn secret_value(raw: &str) -> Result<secrecy::SecretString, std::convert::Infallible> {
    Ok(secrecy::SecretString::from(raw))
}

/// A NATS URL; the error never repeats it (it may carry credentials).
fn broker_url(raw: &str) -> Result<secrecy::SecretString, String> {
    if raw.starts_with("nats://") || raw.starts_with("tls://") {
        return Ok(secrecy::SecretString::from(raw));
    }
    Err("expected a nats:// URL".into())
}

/// A PostgreSQL URL; the error never repeats it (it may carry a password).
fn database_url(raw: &str) -> Result<secrecy::SecretString, String> {
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        return Ok(secrecy::SecretString::from(raw));
    }
    Err(
        "expected a postgres:// URL (without --database-url cordon stores in SQLite in --data-dir)"
            .into(),
    )
}
