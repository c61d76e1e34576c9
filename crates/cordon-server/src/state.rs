//! `AppState`: what every handler can reach, built once at start-up.

use std::sync::Arc;

use cordon_analytics::Warehouse;

use cordon_cluster::Cluster;
use cordon_core::Store;
use cordon_engine::RunService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{LoginThrottle, PasswordHasher, SignupThrottle, TokenGenerations, TokenKeys};
use crate::config::ServerConfig;
use crate::ws::hub::ConnectionHub;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: Arc<dyn Store>,
    /// The one owner of a message's life (and, through it, the engine factory).
    pub runs: Arc<RunService>,
    pub hub: Arc<ConnectionHub>,
    pub tokens: Arc<TokenKeys>,
    /// Each user's current token generation (bumped by sign-out).
    pub generations: Arc<TokenGenerations>,
    pub passwords: PasswordHasher,
    pub login_throttle: Arc<LoginThrottle>,
    pub signup_throttle: Arc<SignupThrottle>,
    /// Live WebSocket sessions, so shutdown can wait for their close frames.
    pub sessions: TaskTracker,
    /// Fired when sessions must close (after the runs' grace period).
    pub close_sessions: CancellationToken,
    /// Several instances: this one's part in the cluster.
    pub cluster: Option<Arc<Cluster>>,
    /// ClickHouse (`--clickhouse-url`), which `GET /api/admin/usage` reads.
    pub analytics: Option<Warehouse>,
}
