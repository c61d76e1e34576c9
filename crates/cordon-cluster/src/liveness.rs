//! This instance's membership: it checks once a second that it is still live (its locking session answers) and takes over the users of instances that died.

use std::sync::Arc;
use std::time::Duration;

use cordon_engine::ExecutionEngineFactory;
use cordon_store::PgOwners;
use tokio_util::sync::CancellationToken;

/// How often liveness is checked and orphans are looked for: with process
/// death noticed by PostgreSQL at once, a dead instance's runs end within
/// about this long.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Orphaned users taken over per sweep.
const ORPHANS_PER_SWEEP: u32 = 100;

/// Runs until `stop` fires; fires `lapsed` (and returns) once this instance
/// is no longer live, since another may then take its users over.
pub async fn watch(
    owners: Arc<PgOwners>,
    factory: Arc<ExecutionEngineFactory>,
    stop: CancellationToken,
    lapsed: CancellationToken,
) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = owners.check().await {
            tracing::error!(%error, "lost this instance's lock on the database; stopping");
            lapsed.cancel();
            return;
        }
        take_over_orphans(&owners, &factory).await;
    }
}

/// Claims each user a dead instance left with runs in progress; the claim
/// ends those runs as `interrupted` (one instance wins each user).
async fn take_over_orphans(owners: &PgOwners, factory: &ExecutionEngineFactory) {
    let orphans = match owners.orphans(ORPHANS_PER_SWEEP).await {
        Ok(orphans) => orphans,
        Err(error) => return tracing::warn!(%error, "could not look for orphaned users"),
    };
    for user_id in orphans {
        if let Err(error) = factory.prepare(&user_id).await {
            tracing::warn!(%error, %user_id, "could not take over an orphaned user");
        }
    }
}
