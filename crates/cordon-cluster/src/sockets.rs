//! The per-user socket cap across instances: a socket's claim, recorded in the database while the socket is open.

use std::sync::Arc;
use std::time::Duration;

use cordon_core::{ConnectionId, StoreError, UserId};
use cordon_store::PgOwners;

/// The longest wait between two tries to forget a closed socket.
const MAX_RELEASE_BACKOFF: Duration = Duration::from_secs(5);

/// An open socket's claim on its user's cluster-wide cap; forgotten (in the
/// background, retried while the database is away) when dropped.
pub struct SocketClaim {
    owners: Arc<PgOwners>,
    connection_id: ConnectionId,
}

impl std::fmt::Debug for SocketClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketClaim")
            .field("connection_id", &self.connection_id)
            .finish_non_exhaustive()
    }
}

/// Claims a socket for the user unless `max` are open on live instances.
pub async fn claim(
    owners: &Arc<PgOwners>,
    user_id: &UserId,
    connection_id: &ConnectionId,
    max: usize,
) -> Result<Option<SocketClaim>, StoreError> {
    let claimed = owners
        .claim_socket(user_id, connection_id.as_str(), max)
        .await?;
    Ok(claimed.then(|| SocketClaim {
        owners: Arc::clone(owners),
        connection_id: connection_id.clone(),
    }))
}

impl Drop for SocketClaim {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // the process is going away, and its claims with its liveness
        };
        let owners = Arc::clone(&self.owners);
        let connection_id = self.connection_id.clone();
        runtime.spawn(release(owners, connection_id));
    }
}

/// Forgets the claim, retrying until it is gone or this instance left (a
/// claim left behind would hold one of the user's slots for as long as this
/// instance lives).
async fn release(owners: Arc<PgOwners>, connection_id: ConnectionId) {
    let mut backoff = Duration::from_millis(100);
    while let Err(error) = owners.release_socket(connection_id.as_str()).await {
        if owners.has_left() {
            return;
        }
        tracing::warn!(%error, "could not release a closed socket's claim; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_RELEASE_BACKOFF);
    }
}
