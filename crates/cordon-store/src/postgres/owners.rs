//! `PgOwners`: which of several instances on one database owns each user, with liveness from PostgreSQL's own advisory locks.
//!
//! An instance joins by taking its advisory lock on a session of its own and
//! holding it for its life; it is *live* exactly while that session is open.
//! When the process dies the kernel closes the socket and PostgreSQL drops
//! the lock at once; when the host vanishes, TCP keepalives (set on the
//! session) drop it within [`DEAD_PEER_BOUND`]. A user's owner is the row in
//! `user_owners`, and a claim takes the row over only when the instance it
//! names is not live, in one statement, so two instances never both own a user.
//! Every open socket is a row in `user_sockets` naming its instance, so the
//! per-user socket cap counts the sockets of live instances, cluster-wide.

use std::str::FromStr;
use std::time::Duration;

use cordon_core::{StoreError, UserId};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use tokio::sync::Mutex;

use crate::convert::backend;

/// First key of every instance's advisory lock ("cord" in ASCII); the second
/// is `hashtext(instance_id)`.
const INSTANCE_LOCKS: i32 = 0x636f_7264;

/// First key of the transaction-scoped advisory locks that serialize one
/// user's socket claims ("sock" in ASCII); the second is `hashtext(user_id)`.
const SOCKET_CLAIMS: i32 = 0x736f_636b;

/// How long PostgreSQL takes at most to notice a peer that vanished without
/// closing its socket (5 s idle, then 3 probes 1 s apart).
pub const DEAD_PEER_BOUND: Duration = Duration::from_secs(8);

/// "The instance named by `$n` holds its lock": live.
macro_rules! live {
    ($instance:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted \
             AND l.objsubid = 2 AND l.classid = 1668248164 AND l.objid = hashtext(",
            $instance,
            ")::oid)"
        )
    };
}

const CLAIM: &str = concat!(
    "INSERT INTO user_owners (user_id, instance_id) VALUES ($1, $2) \
     ON CONFLICT (user_id) DO UPDATE SET instance_id = EXCLUDED.instance_id, claimed_at = now() \
     WHERE NOT ",
    live!("user_owners.instance_id"),
    " RETURNING 1"
);

const OWNER: &str = concat!(
    "SELECT instance_id FROM user_owners WHERE user_id = $1 AND ",
    live!("instance_id")
);

const ORPHANS: &str = concat!(
    "SELECT DISTINCT r.user_id FROM runs r LEFT JOIN user_owners o ON o.user_id = r.user_id \
     WHERE r.status IN ('queued', 'running') AND (o.instance_id IS NULL OR NOT ",
    live!("o.instance_id"),
    ") LIMIT $1"
);

const LIVE_SOCKETS: &str = concat!(
    "SELECT count(*) FROM user_sockets s WHERE s.user_id = $1 AND ",
    live!("s.instance_id")
);

const DEAD_SOCKETS: &str = concat!(
    "DELETE FROM user_sockets WHERE NOT ",
    live!("user_sockets.instance_id")
);

/// Who owns a user, as a claim found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This instance. `fresh`: it has just taken the user over (from nobody,
    /// or from a dead instance), so any unfinished run of the user is abandoned.
    Here { fresh: bool },
    /// Another live instance.
    Elsewhere(String),
}

/// This instance's membership of the cluster.
pub struct PgOwners {
    instance: String,
    /// The session holding this instance's lock: the instance is live while it is open.
    session: Mutex<PgConnection>,
    pool: PgPool,
}

impl std::fmt::Debug for PgOwners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOwners")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl PgOwners {
    /// Joins the cluster on `url` as `instance` (unique per process start).
    pub async fn join(url: &str, instance: &str) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::Backend(format!("invalid database URL: {error}")))?
            .disable_statement_logging();
        let mut session = connect.connect().await.map_err(backend)?;
        for setting in [
            "SET tcp_keepalives_idle = 5",
            "SET tcp_keepalives_interval = 1",
            "SET tcp_keepalives_count = 3",
        ] {
            sqlx::query(setting)
                .execute(&mut session)
                .await
                .map_err(backend)?;
        }
        sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
            .bind(INSTANCE_LOCKS)
            .bind(instance)
            .execute(&mut session)
            .await
            .map_err(backend)?;
        // Claims of users and of sockets, a few round trips each; a burst of
        // upgrades waits here rather than on the store's pools.
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(connect);
        // Sockets of instances that died are ignored by every count; drop them.
        sqlx::query(DEAD_SOCKETS)
            .execute(&pool)
            .await
            .map_err(backend)?;
        Ok(Self {
            instance: instance.to_owned(),
            session: Mutex::new(session),
            pool,
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Makes this instance the user's owner unless a live one is; says which it is.
    pub async fn claim(&self, user_id: &UserId) -> Result<Claimed, StoreError> {
        // Two tries: the owner found by the first may leave before it is read.
        for _ in 0..2 {
            let taken = sqlx::query(CLAIM)
                .bind(user_id.as_str())
                .bind(&self.instance)
                .execute(&self.pool)
                .await
                .map_err(backend)?
                .rows_affected();
            if taken == 1 {
                return Ok(Claimed::Here { fresh: true });
            }
            match self.owner(user_id).await? {
                Some(owner) if owner == self.instance => return Ok(Claimed::Here { fresh: false }),
                Some(owner) => return Ok(Claimed::Elsewhere(owner)),
                None => continue,
            }
        }
        Err(StoreError::Backend(
            "the user's owner kept changing during the claim".into(),
        ))
    }

    /// The user's live owner, if any.
    pub async fn owner(&self, user_id: &UserId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(OWNER)
            .bind(user_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    /// Users with a run in progress and no live owner: a dead instance's.
    pub async fn orphans(&self, limit: u32) -> Result<Vec<UserId>, StoreError> {
        let users: Vec<String> = sqlx::query_scalar(ORPHANS)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(users
            .into_iter()
            .filter_map(|id| UserId::parse(&id).ok())
            .collect())
    }

    /// Gives one user up, if this instance owns them.
    pub async fn release(&self, user_id: &UserId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM user_owners WHERE user_id = $1 AND instance_id = $2")
            .bind(user_id.as_str())
            .bind(&self.instance)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(backend)
    }

    /// Records a socket of the user on this instance unless the user already
    /// has `max` open on live instances; says whether it did. One user's
    /// claims are serialized, so a burst across instances cannot overshoot.
    pub async fn claim_socket(
        &self,
        user_id: &UserId,
        connection_id: &str,
        max: usize,
    ) -> Result<bool, StoreError> {
        let mut claim = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(SOCKET_CLAIMS)
            .bind(user_id.as_str())
            .execute(&mut *claim)
            .await
            .map_err(backend)?;
        let open: i64 = sqlx::query_scalar(LIVE_SOCKETS)
            .bind(user_id.as_str())
            .fetch_one(&mut *claim)
            .await
            .map_err(backend)?;
        if usize::try_from(open).unwrap_or(usize::MAX) >= max {
            return Ok(false); // dropping the transaction rolls it back
        }
        sqlx::query(
            "INSERT INTO user_sockets (connection_id, user_id, instance_id) VALUES ($1, $2, $3)",
        )
        .bind(connection_id)
        .bind(user_id.as_str())
        .bind(&self.instance)
        .execute(&mut *claim)
        .await
        .map_err(backend)?;
        claim.commit().await.map_err(backend)?;
        Ok(true)
    }

    /// Forgets a closed socket recorded by [`PgOwners::claim_socket`].
    pub async fn release_socket(&self, connection_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM user_sockets WHERE connection_id = $1 AND instance_id = $2")
            .bind(connection_id)
            .bind(&self.instance)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(backend)
    }

    /// Whether the store's pool is closed (the instance left): nothing more can be released.
    pub fn has_left(&self) -> bool {
        self.pool.is_closed()
    }

    /// Whether this instance is still live: its locking session answers.
    pub async fn check(&self) -> Result<(), StoreError> {
        let mut session = self.session.lock().await;
        sqlx::query("SELECT 1")
            .execute(&mut *session)
            .await
            .map(drop)
            .map_err(backend)
    }

    /// Gives up every user this instance owns (and its sockets' claims) and ends its liveness; their
    /// next claim (on any instance) takes them over.
    pub async fn leave(&self) -> Result<(), StoreError> {
        for forget in [
            "DELETE FROM user_owners WHERE instance_id = $1",
            "DELETE FROM user_sockets WHERE instance_id = $1",
        ] {
            sqlx::query(forget)
                .bind(&self.instance)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut *self.session.lock().await)
            .await
            .map_err(backend)?;
        self.pool.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_queries_name_the_lock_instances_take() {
        for sql in [CLAIM, OWNER, ORPHANS, LIVE_SOCKETS, DEAD_SOCKETS] {
            assert!(
                sql.contains(&format!("l.classid = {INSTANCE_LOCKS} ")),
                "{sql}"
            );
        }
    }
}
