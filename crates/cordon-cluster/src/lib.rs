//! cordon-cluster: several `cordon serve` processes on one PostgreSQL database behave as one server.
//!
//! - **Ownership** ([`cordon_store::PgOwners`]): one live instance owns each
//!   user; its engine assigns the user's `seq`, decides double-texting and
//!   counts the user's limits, as with one process. An instance is live while
//!   its database session holds its advisory lock.
//! - **Forwarding** ([`placement`], [`calls`]): a message or cancel that
//!   arrives elsewhere goes to the owner by NATS request/reply.
//! - **Fan-out** ([`fanout`]): the owner publishes each committed event on the
//!   user's subject; every instance with a socket of the user follows it
//!   gap-free, filling from the stored log (the truth) what the broker lost.
//! - **Liveness** ([`liveness`]): a dead instance's users are taken over and
//!   their runs end `interrupted`.
//! - **Sign-out** ([`signout`]): announced to every instance.
//! - **Socket cap** ([`sockets`]): each open socket is claimed in the
//!   database, so a user's sockets are counted across live instances.

pub mod calls;
pub mod fanout;
pub mod liveness;
pub mod placement;
pub mod signout;
pub mod sockets;
pub mod wire;

use std::sync::Arc;

use async_nats::client::Client;
use cordon_core::{ConnectionId, EventSinks, Store, StoreError, UserId};
use cordon_engine::{ExecutionEngineFactory, Placement};
use cordon_store::PgOwners;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use fanout::{ClusterSinks, Follow, Follows};
pub use signout::OnSignOut;
pub use sockets::SocketClaim;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("could not join the cluster on the database: {0}")]
    Store(#[from] StoreError),
    #[error("could not connect to the broker: {0}")]
    Broker(String),
}

/// A fresh name for this process's membership (one per start).
pub fn new_instance_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Longest `leave` waits for the cluster's loops to end (the calls' loop answers
/// what already reached it first) before it aborts them.
const LOOPS_END_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// This instance's part in the cluster.
pub struct Cluster {
    owners: Arc<PgOwners>,
    broker: Client,
    follows: Arc<Follows>,
    store: Arc<dyn Store>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    stop: CancellationToken,
}

impl Cluster {
    /// Joins the cluster: takes this instance's lock on the database and
    /// connects to the broker (which must be up at start; later outages are
    /// survived). `local` is the hub the follows deliver to.
    pub async fn join(
        database_url: &str,
        broker_url: &str,
        store: Arc<dyn Store>,
        local: Arc<dyn EventSinks>,
    ) -> Result<Self, ClusterError> {
        let instance = new_instance_id();
        let owners = Arc::new(PgOwners::join(database_url, &instance).await?);
        let broker = async_nats::ConnectOptions::new()
            .name(format!("cordon-{instance}"))
            // An instance delivers its own events to its own sockets directly;
            // the broker's copy of them would only be parsed and dropped.
            .no_echo()
            .retry_on_initial_connect()
            .connect(broker_url)
            .await
            .map_err(|error| ClusterError::Broker(error.to_string()))?;
        let follows = Follows::new(broker.clone(), Arc::clone(&store), local);
        tracing::info!(instance, "joined the cluster");
        Ok(Self {
            owners,
            broker,
            follows,
            store,
            tasks: std::sync::Mutex::default(),
            stop: CancellationToken::new(),
        })
    }

    pub fn instance(&self) -> &str {
        self.owners.instance()
    }

    /// Where users' engines are: owned here or forwarded.
    pub fn placement(&self) -> Arc<dyn Placement> {
        Arc::new(placement::ClusterPlacement::new(
            Arc::clone(&self.owners),
            self.broker.clone(),
        ))
    }

    /// The sinks the factory's engines publish to: the broker and the local follows.
    pub fn sinks(&self) -> Arc<dyn EventSinks> {
        let (sinks, publisher) =
            ClusterSinks::start(self.broker.clone(), Arc::clone(&self.follows));
        self.keep(publisher);
        Arc::new(sinks)
    }

    /// Serves forwarded calls, watches liveness and hears sign-outs. `lapsed`
    /// fires if this instance stops being live: it must stop serving.
    pub async fn start(
        &self,
        factory: Arc<ExecutionEngineFactory>,
        on_sign_out: OnSignOut,
        lapsed: CancellationToken,
    ) -> Result<(), ClusterError> {
        let stop = self.stop.clone();
        let calls = calls::serve(
            self.broker.clone(),
            wire::calls_subject(self.instance()),
            Arc::clone(&factory),
            Arc::clone(&self.store),
            stop.clone(),
        );
        let sign_outs = signout::listen(self.broker.clone(), on_sign_out, stop.clone());
        let broker_error =
            |error: async_nats::SubscribeError| ClusterError::Broker(error.to_string());
        let (calls, sign_outs) = (
            calls.await.map_err(broker_error)?,
            sign_outs.await.map_err(broker_error)?,
        );
        self.keep(tokio::spawn(calls));
        self.keep(tokio::spawn(sign_outs));
        self.keep(tokio::spawn(liveness::watch(
            Arc::clone(&self.owners),
            factory,
            stop,
            lapsed,
        )));
        Ok(())
    }

    /// Follows the user's events on this instance while the result is held.
    pub async fn follow(&self, user_id: &UserId) -> Result<Arc<Follow>, StoreError> {
        self.follows.follow(user_id).await
    }

    /// Claims one of the user's `max` sockets across the cluster, or `None`
    /// when live instances hold them all.
    pub async fn claim_socket(
        &self,
        user_id: &UserId,
        connection_id: &ConnectionId,
        max: usize,
    ) -> Result<Option<SocketClaim>, StoreError> {
        sockets::claim(&self.owners, user_id, connection_id, max).await
    }

    /// Tells every instance that the user signed out (tokens below `generation`).
    pub async fn announce_sign_out(&self, user_id: &UserId, generation: u32) {
        signout::announce(&self.broker, user_id, generation).await;
    }

    /// Leaves after this instance's runs ended: its users are free to be
    /// claimed by the others.
    pub async fn leave(&self) {
        self.stop.cancel();
        // Each loop ends on `stop`; the calls' loop first answers the calls
        // that already reached it, so no sender waits out its timeout.
        let tasks = std::mem::take(&mut *self.lock_tasks());
        for mut task in tasks {
            if tokio::time::timeout(LOOPS_END_WAIT, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        if let Err(error) = self.broker.flush().await {
            tracing::debug!(%error, "could not flush the broker connection");
        }
        if let Err(error) = self.owners.leave().await {
            tracing::warn!(%error, "could not give up this instance's users");
        }
    }

    fn keep(&self, task: JoinHandle<()>) {
        self.lock_tasks().push(task);
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
