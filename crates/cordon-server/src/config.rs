//! Server configuration, built once at start-up and passed explicitly.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cordon_core::{Clock, SystemClock};

use cordon_engine::EngineConfig;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the SQLite file and the generated JWT secret live.
    pub data_dir: PathBuf,
    /// A `postgres://` URL: store in PostgreSQL instead of SQLite in `data_dir`.
    /// Secret: it may carry a password.
    pub database_url: Option<secrecy::SecretString>,
    /// A `nats://` URL: several instances on `database_url` serve as one
    /// (cordon-cluster). Secret: it may carry credentials.
    pub broker_url: Option<secrecy::SecretString>,
    /// HS256 secret; `None` means generate one once and keep it in the data dir.
    /// Redacted in `Debug`: a config is logged at start-up.
    pub jwt_secret: Option<secrecy::SecretString>,
    /// Material (at least 32 bytes) of the key users' secrets are sealed
    /// with; `None` means generate one once and keep it in the data dir.
    pub secrets_key: Option<secrecy::SecretString>,
    /// Lifetime of issued tokens.
    pub token_ttl: Duration,
    /// Server `ping` frame interval.
    pub heartbeat_interval: Duration,
    /// A socket with no client traffic for this long is closed.
    pub idle_timeout: Duration,
    /// How long running runs may finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Extra `Origin`s allowed to open `/ws` (same-origin is always allowed).
    pub allowed_origins: Vec<String>,
    /// Frames queued per connection before it counts as a slow consumer.
    pub outbound_queue: usize,
    /// How long the event log keeps events; older resume cursors get `cursor_expired`.
    pub event_retention: Duration,
    /// How often retention deletes expired events.
    pub retention_sweep_interval: Duration,
    /// Password hashes queued or running at most; past it sign-ins get `503 busy`.
    pub max_pending_hashes: usize,
    /// Sign-up attempts per client address per hour (`429 too_many_signups`).
    pub signups_per_hour: u32,
    /// Sign-up answers `202 accepted` whether the name was free or taken (no
    /// token: the client signs in next), so names cannot be enumerated.
    pub quiet_signup: bool,
    /// Longest a connection may take to send a request's headers, or stay idle between requests.
    pub header_timeout: Duration,
    /// Longest a request body may take to arrive (`408`).
    pub body_timeout: Duration,
    /// A socket whose peer takes no frame for this long is closed.
    pub write_timeout: Duration,
    /// Sockets one user may have open at once; another upgrade gets `429 too_many_connections`.
    pub max_sockets_per_user: usize,
    /// Proxies whose `X-Forwarded-For` names the client (for per-address limits).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Bound of the queue to the store's writer, in writes; past half of it
    /// new runs are refused with `overloaded`.
    pub write_queue_capacity: usize,
    /// CPU time one history search may use before it is stopped.
    pub search_budget: Duration,
    /// Delay of each step of the built-in offline model.
    pub offline_step_delay: Duration,
    pub engine: EngineConfig,
    /// MCP tool servers whose tools are offered next to the built-ins.
    pub mcp_servers: Vec<cordon_mcp::McpServer>,
    /// What budgets reset by and model calls are stamped with; tests move it.
    pub clock: Arc<dyn Clock>,
    /// Where each finished run and model call is written for analytics (`--clickhouse-url`).
    pub clickhouse: Option<cordon_analytics::ClickHouseConfig>,
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            broker_url: None,
            jwt_secret: None,
            secrets_key: None,
            token_ttl: Duration::from_secs(24 * 3600),
            heartbeat_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(240),
            shutdown_grace: Duration::from_secs(10),
            allowed_origins: Vec::new(),
            outbound_queue: 256,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            retention_sweep_interval: Duration::from_secs(3600),
            write_queue_capacity: cordon_store::DEFAULT_WRITE_QUEUE_CAPACITY,
            search_budget: cordon_store::DEFAULT_SEARCH_BUDGET,
            trusted_proxies: Vec::new(),
            max_sockets_per_user: 8,
            write_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_pending_hashes: crate::auth::password::DEFAULT_MAX_PENDING,
            signups_per_hour: crate::auth::signup::DEFAULT_SIGNUPS_PER_HOUR,
            quiet_signup: false,
            offline_step_delay: Duration::from_millis(100),
            engine: EngineConfig::default(),
            mcp_servers: Vec::new(),
            clock: Arc::new(SystemClock),
            clickhouse: None,
        }
    }
}
