//! The router and the serve loop with graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post, put};
use cordon_analytics::{ClickHouseAnalytics, Warehouse};
use cordon_cluster::{Cluster, ClusterError, OnSignOut};
use cordon_core::{AnalyticsSink, EventSinks, LlmProvider, Store, StoreError};
use cordon_engine::{
    AgentRegistry, EngineDeps, ExecutionEngineFactory, RunService, ToolDispatcher,
    end_abandoned_runs,
};
use cordon_llm::OfflineModel;
use cordon_mcp::McpServers;
use cordon_protocol::FrameEncoder;
use cordon_store::{PgStore, SealingKey, SqliteStore, StoreOptions};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api::{auth, budget, events, health, messages, runs, secrets, threads, usage};
use crate::auth::password::PasswordError;
use crate::auth::secret::{self, SecretError};
use crate::auth::{LoginThrottle, PasswordHasher, SignupThrottle, TokenGenerations, TokenKeys};
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::metrics;
use crate::state::AppState;
use crate::streams;
use crate::web;
use crate::ws::hub::ConnectionHub;
use crate::ws::upgrade::ws_handler;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("could not create the data directory: {0}")]
    DataDir(std::io::Error),
    #[error("could not open the store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("--broker-url needs --database-url: instances share a PostgreSQL database")]
    BrokerWithoutDatabase,
    #[error("this instance lost its lock on the database; another may have taken its users over")]
    Lapsed,
    #[error("{} holds no cordon database; start the server on it once, or pass --data-dir", .0.display())]
    NoDatabase(std::path::PathBuf),
}

/// Every route of cordon over `state`.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/threads", get(threads::list_threads))
        .route(
            "/threads/{id}/messages",
            get(threads::list_messages).post(messages::post_to_thread),
        )
        .route("/messages", post(messages::post_new_thread))
        .route("/events", get(events::list_events))
        .route("/runs", get(runs::list_runs))
        .route("/runs/{id}", get(runs::get_run))
        .route("/runs/{id}/events", get(runs::list_events))
        .route("/runs/{id}/cancel", post(runs::cancel_run))
        .route(
            "/runs/{id}/approvals/{call_id}",
            post(runs::answer_approval),
        )
        .route("/usage", get(usage::get_usage))
        .route("/me/budget", get(budget::my_budget))
        .route("/admin/usage", get(usage::admin_usage))
        .route(
            "/admin/users/{username}/budget",
            get(budget::user_budget)
                .put(budget::put_user_budget)
                .delete(budget::delete_user_budget),
        )
        .route("/me/secrets", get(secrets::list_secrets))
        .route(
            "/me/secrets/{name}",
            put(secrets::put_secret).delete(secrets::delete_secret),
        )
        .merge(streams::routes(&state.config.allowed_origins));
    Router::new()
        .nest("/api", api)
        .route("/ws", get(ws_handler))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::scrape))
        .merge(web::routes())
        .fallback(|| async { ApiError::NotFound("route") })
        // A body that trickles in slower than this is cut off (408).
        .layer(RequestBodyTimeoutLayer::new(state.config.body_timeout))
        .layer(axum::middleware::map_response(web::security_headers))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // Spans name the path only: a `token` query parameter never reaches the logs.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

/// A configured server, ready to serve on a listener.
pub struct Server {
    config: ServerConfig,
    llm: Option<Arc<dyn LlmProvider>>,
}

impl Server {
    pub fn new(config: ServerConfig) -> Self {
        Self { config, llm: None }
    }

    /// Replaces the built-in offline model.
    pub fn with_llm(mut self, llm: Arc<dyn LlmProvider>) -> Self {
        self.llm = Some(llm);
        self
    }

    /// Serves until `shutdown` resolves, then drains (see the crate docs).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        metrics::install();
        let lapsed = CancellationToken::new();
        let tools = Arc::new(ToolDispatcher::builtin());
        let stop_tool_servers = CancellationToken::new();
        let mcp_servers = self.config.mcp_servers.clone();
        let tool_servers = McpServers::start(mcp_servers, &tools, &stop_tool_servers).await;
        let stop_analytics = CancellationToken::new();
        let analytics = start_analytics(&self.config, &stop_analytics);
        let reporting = analytics.as_ref().map(|(warehouse, sink, _)| {
            let sink: Arc<dyn AnalyticsSink> = sink.clone();
            (warehouse.clone(), sink)
        });
        let state = self.build_state(lapsed.clone(), tools, reporting).await?;
        let stop_cleanup = CancellationToken::new();
        let cleanup = state.runs.factory().spawn_cleanup(stop_cleanup.clone());
        let expiry = (state.runs.factory()).spawn_approval_expiry(stop_cleanup.clone());
        let retention = spawn_retention(&state, stop_cleanup.clone());
        let draining = CancellationToken::new();
        let http = tokio::spawn(crate::http::serve(
            listener,
            app(state.clone()),
            state.config.header_timeout,
            draining.clone(),
        ));
        tracing::info!("cordon is serving");
        let outcome = tokio::select! {
            () = shutdown => Ok(()),
            () = lapsed.cancelled() => Err(ServeError::Lapsed),
        };
        tracing::info!("shutting down: no new connections or runs");
        draining.cancel();
        // Lapsed: another instance may be taking the users over; stop at once.
        let grace = match outcome {
            Ok(()) => state.config.shutdown_grace,
            Err(_) => std::time::Duration::ZERO,
        };
        match &state.cluster {
            Some(_) => {
                // Sockets reconnect elsewhere at once and resume; this
                // instance's runs reach them there through the broker.
                state.close_sessions.cancel();
                state.runs.factory().hand_over(grace).await;
            }
            None => state.runs.factory().shutdown(grace).await,
        }
        // The runs' last events are committed, so published, before sockets close.
        if let Err(error) = state.store.sync().await {
            tracing::error!(%error, "could not flush the last writes before closing sockets");
        }
        leave_cluster(&state).await;
        state.close_sessions.cancel();
        state.sessions.close();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), state.sessions.wait()).await;
        stop_cleanup.cancel();
        let _ = cleanup.await;
        let _ = expiry.await;
        let _ = retention.await;
        let _ = http.await;
        state.store.close().await;
        stop_analytics.cancel();
        if let Some((_, _, flusher)) = analytics {
            let _ = flusher.await;
        }
        stop_tool_servers.cancel();
        tool_servers.join().await;
        tracing::info!("shutdown complete");
        outcome
    }

    async fn build_state(
        self,
        lapsed: CancellationToken,
        tools: Arc<ToolDispatcher>,
        analytics: Option<(Warehouse, Arc<dyn AnalyticsSink>)>,
    ) -> Result<AppState, ServeError> {
        let config = self.config;
        std::fs::create_dir_all(&config.data_dir).map_err(ServeError::DataDir)?;
        let configured = config.jwt_secret.as_ref().map(ExposeSecret::expose_secret);
        let secret = secret::load_or_create(secret::JWT_SECRET, configured, &config.data_dir)?;
        let store = open_store(&config).await?;
        let hub = Arc::new(ConnectionHub::default());
        let cluster = join_cluster(&config, &store, &hub).await?;
        // Before any engine exists: engines continue each user's seq from the
        // store. Several instances: the others' runs are live; a dead one's
        // runs are ended by whichever instance takes its users over.
        if cluster.is_none() {
            end_abandoned_runs(&store, &FrameEncoder).await?;
        }
        let llm = self
            .llm
            .unwrap_or_else(|| Arc::new(OfflineModel::new(config.offline_step_delay)));
        let deps = EngineDeps {
            registry: Arc::new(AgentRegistry::builtin()),
            llm,
            tools,
            store: Arc::clone(&store),
            encoder: Arc::new(FrameEncoder),
            clock: Arc::clone(&config.clock),
            analytics: analytics.as_ref().map(|(_, sink)| Arc::clone(sink)),
        };
        let sinks: Arc<dyn EventSinks> = match &cluster {
            Some(cluster) => cluster.sinks(),
            None => hub.clone(),
        };
        let mut factory = ExecutionEngineFactory::new(deps, sinks, config.engine.clone());
        if let Some(cluster) = &cluster {
            factory = factory.with_placement(cluster.placement());
        }
        let factory = Arc::new(factory);
        let generations = Arc::new(match cluster {
            Some(_) => TokenGenerations::expiring(SIGNED_OUT_ELSEWHERE_WITHIN),
            None => TokenGenerations::default(),
        });
        if let Some(cluster) = &cluster {
            let on_sign_out = sign_out_here(&hub, &generations);
            cluster
                .start(Arc::clone(&factory), on_sign_out, lapsed)
                .await?;
        }
        let runs = Arc::new(RunService::new(factory, Arc::clone(&store)));
        let hash_permits = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(AppState {
            tokens: Arc::new(TokenKeys::new(&secret, config.token_ttl)),
            generations,
            passwords: PasswordHasher::new(hash_permits, config.max_pending_hashes)?,
            login_throttle: Arc::new(LoginThrottle::default()),
            signup_throttle: Arc::new(SignupThrottle::new(config.signups_per_hour)),
            config: Arc::new(config),
            store,
            runs,
            hub,
            sessions: TaskTracker::new(),
            close_sessions: CancellationToken::new(),
            cluster: cluster.map(Arc::new),
            analytics: analytics.map(|(warehouse, _)| warehouse),
        })
    }
}

/// The cluster of instances on the database, with `--broker-url`.
async fn join_cluster(
    config: &ServerConfig,
    store: &Arc<dyn Store>,
    hub: &Arc<ConnectionHub>,
) -> Result<Option<Cluster>, ServeError> {
    let (broker, database) = match (&config.broker_url, &config.database_url) {
        (None, _) => return Ok(None),
        (Some(broker), Some(database)) => (broker, database),
        (Some(_), None) => return Err(ServeError::BrokerWithoutDatabase),
    };
    let (database, broker) = (database.expose_secret(), broker.expose_secret());
    let cluster = Cluster::join(database, broker, Arc::clone(store), hub.clone()).await?;
    Ok(Some(cluster))
}

/// ClickHouse's client and the analytics sink with its flusher task, when `--clickhouse-url` is set.
fn start_analytics(
    config: &ServerConfig,
    stop: &CancellationToken,
) -> Option<(
    Warehouse,
    Arc<ClickHouseAnalytics>,
    tokio::task::JoinHandle<()>,
)> {
    let config = config.clickhouse.clone()?;
    let warehouse = Warehouse::new(config.clone());
    let (sink, flusher) = ClickHouseAnalytics::start(warehouse.clone(), &config, stop.clone());
    Some((warehouse, sink, flusher))
}

/// With several instances, how long a sign-out elsewhere may take to reach
/// this one's token cache if its announcement is lost.
const SIGNED_OUT_ELSEWHERE_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

async fn open_store(config: &ServerConfig) -> Result<Arc<dyn Store>, ServeError> {
    let options = StoreOptions {
        write_queue_capacity: config.write_queue_capacity,
        search_budget: config.search_budget,
        shared: config.broker_url.is_some(),
        sealing_key: Some(sealing_key(config)?),
    };
    Ok(match &config.database_url {
        Some(url) => PgStore::open(url.expose_secret(), options).await?,
        None => SqliteStore::open_with(&config.data_dir, options).await?,
    })
}

/// The key users' secrets are sealed with: derived from `--secrets-key`, or
/// from the one kept in the data dir (several instances share theirs
/// through the setting).
fn sealing_key(config: &ServerConfig) -> Result<SealingKey, ServeError> {
    let configured = config.secrets_key.as_ref().map(ExposeSecret::expose_secret);
    let material = secret::load_or_create(secret::SEALING_SECRET, configured, &config.data_dir)?;
    Ok(SealingKey::derive(&material))
}

/// A sign-out announced by another instance, applied here.
fn sign_out_here(hub: &Arc<ConnectionHub>, generations: &Arc<TokenGenerations>) -> OnSignOut {
    let (hub, generations) = (Arc::clone(hub), Arc::clone(generations));
    Arc::new(move |user_id, generation| {
        generations.record(user_id, generation);
        let closed = hub.sign_out(user_id, generation);
        tracing::info!(%user_id, closed, "signed out on another instance");
    })
}

/// Gives this instance's users up once its runs ended (several instances).
async fn leave_cluster(state: &AppState) {
    let Some(cluster) = &state.cluster else {
        return;
    };
    cluster.leave().await;
}

/// Deletes events older than the retention, at start-up and then every
/// `retention_sweep_interval`, until `stop` fires.
fn spawn_retention(state: &AppState, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let store = Arc::clone(&state.store);
    let retention = state.config.event_retention;
    let mut ticks = tokio::time::interval(state.config.retention_sweep_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => {
                    let before = cordon_core::now() - retention;
                    match store.prune_events(before).await {
                        Ok(0) => {}
                        Ok(deleted) => tracing::info!(deleted, "retention deleted old events"),
                        Err(error) => tracing::warn!(%error, "retention could not delete old events"),
                    }
                }
            }
        }
    })
}
