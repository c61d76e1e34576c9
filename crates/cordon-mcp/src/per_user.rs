//! `PerUserServer`: an MCP server each user reaches over a connection of their own, its headers filled from that user's secrets.
//!
//! A user's connection is made on their first run that needs it (with the
//! secrets their headers name, read through the run's `UserStore`, so only
//! theirs can be read), kept while it is used, made again when a secret
//! changes, the server announces a new tool list or the connection closes,
//! and dropped after [`IDLE`] without use. The tools it lists are bound to
//! it: a call made in a user's run can only go out over that user's
//! connection, with that user's credential.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cordon_core::{SecretValue, Tool, ToolContext, UserId, UserTools};

use crate::config::{McpServer, McpTransport};
use crate::connection::{Connection, Watcher, connect_http};
use crate::template::fill;
use crate::tool::{Link, McpTool};

/// A user's connection unused for this long is closed.
const IDLE: Duration = Duration::from_secs(600);

pub(crate) struct PerUserServer {
    server: McpServer,
    secret_names: Vec<String>,
    users: Mutex<HashMap<UserId, Arc<tokio::sync::Mutex<Option<UserConnection>>>>>,
}

/// One user's live connection and the tools listed over it.
struct UserConnection {
    /// Of the filled headers: a changed secret makes a new connection.
    fingerprint: u64,
    connection: Connection,
    watcher: Watcher,
    tools: Vec<Arc<dyn Tool>>,
    last_used: Instant,
}

impl PerUserServer {
    pub fn new(server: McpServer) -> Self {
        Self {
            secret_names: server.secret_names(),
            server,
            users: Mutex::default(),
        }
    }

    fn slot(&self, user_id: &UserId) -> Arc<tokio::sync::Mutex<Option<UserConnection>>> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        // Idle connections of anyone go first; a slot in use is skipped.
        users.retain(|_, slot| {
            slot.try_lock().map_or(true, |held| {
                held.as_ref().is_some_and(|c| c.last_used.elapsed() < IDLE)
            })
        });
        Arc::clone(users.entry(user_id.clone()).or_default())
    }

    /// The user's secrets the headers name; `None` if one is not set.
    async fn secrets(&self, cx: &ToolContext) -> Option<BTreeMap<String, SecretValue>> {
        let mut secrets = BTreeMap::new();
        for name in &self.secret_names {
            match cx.store.secret(name).await {
                Ok(Some(value)) => {
                    secrets.insert(name.clone(), value);
                }
                Ok(None) => return None,
                Err(error) => {
                    tracing::warn!(server = %self.server.name, %error, "could not read a user's secret");
                    return None;
                }
            }
        }
        Some(secrets)
    }

    async fn connect(
        &self,
        headers: &BTreeMap<String, String>,
        fingerprint: u64,
    ) -> Result<UserConnection, String> {
        let McpTransport::Http { url, .. } = &self.server.transport else {
            return Err("a per-user server is streamable HTTP".into());
        };
        let watcher = Watcher::default();
        let connection = connect_http(url, headers, watcher.clone()).await?;
        let listed = connection
            .peer()
            .list_all_tools()
            .await
            .map_err(|error| format!("could not list its tools: {error}"))?;
        let link = Arc::new(Link::new(
            self.server.name.clone(),
            self.server.call_timeout,
        ));
        link.set(Some(connection.peer().clone()));
        let tools = listed
            .into_iter()
            .map(|tool| Arc::new(McpTool::new(&link, tool)) as Arc<dyn Tool>)
            .collect();
        Ok(UserConnection {
            fingerprint,
            connection,
            watcher,
            tools,
            last_used: Instant::now(),
        })
    }
}

#[async_trait]
impl UserTools for PerUserServer {
    async fn tools_for(&self, cx: &ToolContext) -> Vec<Arc<dyn Tool>> {
        let Some(secrets) = self.secrets(cx).await else {
            return Vec::new();
        };
        let McpTransport::Http { headers, .. } = &self.server.transport else {
            return Vec::new();
        };
        let headers: BTreeMap<String, String> = headers
            .iter()
            .map(|(name, value)| (name.clone(), fill(value, &secrets)))
            .collect();
        let fingerprint = fingerprint_of(&headers);
        let slot = self.slot(cx.store.user_id());
        let mut held = slot.lock().await;
        if let Some(live) = held.as_mut().filter(|live| {
            live.fingerprint == fingerprint
                && !live.connection.is_closed()
                && !live.watcher.stale.load(Ordering::Acquire)
        }) {
            live.last_used = Instant::now();
            return live.tools.clone();
        }
        *held = None;
        match self.connect(&headers, fingerprint).await {
            Ok(live) => held.insert(live).tools.clone(),
            Err(error) => {
                tracing::warn!(server = %self.server.name, %error, "could not reach a user's MCP server");
                Vec::new()
            }
        }
    }
}

fn fingerprint_of(headers: &BTreeMap<String, String>) -> u64 {
    let mut hasher = DefaultHasher::new();
    headers.hash(&mut hasher);
    hasher.finish()
}
