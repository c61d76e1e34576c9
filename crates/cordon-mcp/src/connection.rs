//! `McpServers`: one supervisor per configured server, keeping its connection up and its tools listed.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cordon_core::Tool;
use cordon_engine::ToolDispatcher;
use rmcp::model::SubscriptionFilterBuilder;
use rmcp::service::{NotificationContext, Peer, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{McpServer, McpTransport};
use crate::tool::{Link, McpTool};

/// How long start-up waits for every server's first tool list.
const STARTUP_WAIT: Duration = Duration::from_secs(10);
/// A server that has not finished the MCP handshake within this long is retried.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnect backoff: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_LAST: Duration = Duration::from_secs(30);
/// A connection that lived this long starts the backoff over.
const STABLE: Duration = Duration::from_secs(30);

/// The running supervisors; they stop with the token given to `start`.
pub struct McpServers {
    supervisors: JoinSet<()>,
}

/// Installs ring as the process's rustls provider, once. rmcp's HTTP client
/// (and the trace exporter's, the same reqwest) takes the process's provider
/// and panics without one; another part of the process may have installed
/// it already, which is as good.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl McpServers {
    /// Starts a supervisor per server and waits (at most [`STARTUP_WAIT`])
    /// until each has listed its tools or failed its first try, so a server
    /// that is up has its tools offered from the first run.
    pub async fn start(
        servers: Vec<McpServer>,
        tools: &Arc<ToolDispatcher>,
        stop: &CancellationToken,
    ) -> Self {
        install_tls_provider();
        let mut supervisors = JoinSet::new();
        let mut first_tries = Vec::new();
        for server in servers {
            if server.per_user {
                tools.add_user_tools(Arc::new(crate::per_user::PerUserServer::new(server)));
                continue;
            }
            let (tried, first_try) = oneshot::channel();
            first_tries.push(first_try);
            supervisors.spawn(supervise(
                server,
                Arc::clone(tools),
                stop.child_token(),
                tried,
            ));
        }
        let all_tried = futures_util::future::join_all(first_tries);
        if tokio::time::timeout(STARTUP_WAIT, all_tried).await.is_err() {
            tracing::warn!("some MCP servers are still starting; their tools appear once listed");
        }
        Self { supervisors }
    }

    /// Waits for the supervisors to stop (after the token fired).
    pub async fn join(mut self) {
        while self.supervisors.join_next().await.is_some() {}
    }
}

/// Hears a server's announcement that its tool list changed: wakes the
/// supervisor, and marks the list stale for whoever lists on demand.
#[derive(Clone, Default)]
pub(crate) struct Watcher {
    pub changed: Arc<Notify>,
    pub stale: Arc<AtomicBool>,
}

impl ClientHandler for Watcher {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.stale.store(true, Ordering::Release);
        self.changed.notify_one();
    }
}

pub(crate) type Connection = RunningService<RoleClient, Watcher>;

/// Connects, lists, relists on change, and reconnects with backoff, until `stop`.
async fn supervise(
    server: McpServer,
    tools: Arc<ToolDispatcher>,
    stop: CancellationToken,
    tried: oneshot::Sender<()>,
) {
    let link = Arc::new(Link::new(server.name.clone(), server.call_timeout));
    let mut tried = Some(tried);
    let mut backoff = BACKOFF_FIRST;
    loop {
        let watcher = Watcher::default();
        let changed = Arc::clone(&watcher.changed);
        let connected = tokio::select! {
            connected = connect(&server, watcher) => connected,
            () = stop.cancelled() => return,
        };
        let since = Instant::now();
        match connected {
            Ok(connection) => {
                tracing::info!(server = %server.name, "connected to the MCP server");
                let stopped = serve(&link, &tools, connection, &changed, &stop, &mut tried).await;
                link.set(None);
                if stopped {
                    return;
                }
                tracing::warn!(server = %server.name, "the MCP server went away; reconnecting");
            }
            Err(error) => {
                tracing::warn!(server = %server.name, %error, "could not connect to the MCP server");
            }
        }
        if let Some(tried) = tried.take() {
            let _ = tried.send(());
        }
        if since.elapsed() >= STABLE {
            backoff = BACKOFF_FIRST;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_LAST);
    }
}

/// Serves one connection until it closes (false) or `stop` fires (true).
async fn serve(
    link: &Arc<Link>,
    tools: &ToolDispatcher,
    connection: Connection,
    changed: &Notify,
    stop: &CancellationToken,
    tried: &mut Option<oneshot::Sender<()>>,
) -> bool {
    let peer = connection.peer().clone();
    link.set(Some(peer.clone()));
    let closed = connection.waiting();
    tokio::pin!(closed);
    let subscribed = forward_changes(peer.clone(), changed);
    tokio::pin!(subscribed);
    list(link, tools, &peer).await;
    if let Some(tried) = tried.take() {
        let _ = tried.send(());
    }
    loop {
        tokio::select! {
            _ = &mut closed => return false,
            () = changed.notified() => list(link, tools, &peer).await,
            () = &mut subscribed => {}
            () = stop.cancelled() => return true,
        }
    }
}

/// Lists the server's tools into the dispatcher; on failure keeps the last list.
async fn list(link: &Arc<Link>, tools: &ToolDispatcher, peer: &Peer<RoleClient>) {
    match peer.list_all_tools().await {
        Ok(listed) => {
            let listed: Vec<Arc<dyn Tool>> = listed
                .into_iter()
                .map(|tool| Arc::new(McpTool::new(link, tool)) as Arc<dyn Tool>)
                .collect();
            tracing::info!(server = %link.server, tools = listed.len(), "listed the MCP server's tools");
            tools.set_server_tools(&link.server, listed);
        }
        Err(error) => {
            tracing::warn!(server = %link.server, %error, "could not list the MCP server's tools");
        }
    }
}

/// On protocol versions with subscriptions, a server announces list changes
/// only to a subscriber; older ones send them to the handler. Never ends.
async fn forward_changes(peer: Peer<RoleClient>, changed: &Notify) {
    let filter = SubscriptionFilterBuilder::default()
        .tools_list_changed()
        .build();
    match peer.listen(filter).await {
        Ok(mut subscription) => {
            while let Ok(Some(_)) = subscription.next().await {
                changed.notify_one();
            }
        }
        Err(error) => {
            tracing::debug!(%error, "no tool-list subscription; relying on notifications")
        }
    }
    std::future::pending().await
}

async fn connect(server: &McpServer, watcher: Watcher) -> Result<Connection, String> {
    match &server.transport {
        McpTransport::Stdio { command, args, env } => {
            let mut child = tokio::process::Command::new(command);
            child.args(args).envs(env).kill_on_drop(true);
            let (transport, stderr) = TokioChildProcess::builder(child)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|error| format!("could not start `{command}`: {error}"))?;
            if let Some(stderr) = stderr {
                tokio::spawn(log_stderr(server.name.clone(), stderr));
            }
            within_handshake_timeout(watcher.serve(transport)).await
        }
        McpTransport::Http { url, headers } => connect_http(url, headers, watcher).await,
    }
}

/// Connects to a streamable HTTP server sending `headers` (filled in: no templates).
pub(crate) async fn connect_http(
    url: &str,
    headers: &BTreeMap<String, String>,
    watcher: Watcher,
) -> Result<Connection, String> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url).custom_headers(header_map(headers)?);
    let transport = StreamableHttpClientTransport::from_config(config);
    within_handshake_timeout(watcher.serve(transport)).await
}

async fn within_handshake_timeout<E: std::fmt::Display>(
    handshake: impl Future<Output = Result<Connection, E>>,
) -> Result<Connection, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(connected) => connected.map_err(|error| error.to_string()),
        Err(_) => Err("the MCP handshake did not finish within 10 s".to_owned()),
    }
}

/// The configured headers; a bad one names itself but never its value.
fn header_map(
    headers: &BTreeMap<String, String>,
) -> Result<HashMap<http::HeaderName, http::HeaderValue>, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = http::HeaderName::try_from(name.as_str())
                .map_err(|_| format!("`{name}` is not a valid header name"))?;
            let mut value = http::HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("the value of header `{name}` is not valid"))?;
            value.set_sensitive(true);
            Ok((name, value))
        })
        .collect()
}

/// A stdio server's stderr, line by line, into cordon's log.
async fn log_stderr(server: String, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(server = %server, "{line}");
    }
}
