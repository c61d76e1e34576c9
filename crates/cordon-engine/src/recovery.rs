//! Crash recovery: every run a dead process left `queued` or `running` ends as `interrupted`, with a terminal event in its user's log (all of them at start-up, or one user's when another instance takes that user over).

use std::collections::HashMap;
use std::sync::Arc;

use cordon_core::{
    ErrorCode, EventEncoder, EventSink, RunEvent, RunEventKind, RunFilter, RunOutcome, RunRecord,
    RunStatus, Store, StoreError, UserId,
};

use crate::supervisor::SUPERVISOR;

const INTERRUPTED_MESSAGE: &str = "the server stopped while the run was in progress";

/// Ends every unfinished run as `interrupted`; returns how many. Must run
/// before any engine is built (engines continue each user's `seq` from the
/// store). Each run's terminal event and status are one transaction, so a
/// crash during recovery leaves every run either ended once or still to end.
pub async fn end_abandoned_runs(
    store: &Arc<dyn Store>,
    encoder: &dyn EventEncoder,
) -> Result<usize, StoreError> {
    let runs = store.unfinished_runs().await?;
    let mut last_seq: HashMap<UserId, u64> = HashMap::new();
    for run in &runs {
        let seq = match last_seq.get(&run.user_id) {
            Some(seq) => seq + 1,
            None => store.last_event_seq(&run.user_id).await? + 1,
        };
        last_seq.insert(run.user_id.clone(), seq);
        end_run(store, encoder, run, seq, None).await?;
    }
    if !runs.is_empty() {
        tracing::warn!(
            runs = runs.len(),
            "ended runs a previous process left unfinished as interrupted"
        );
    }
    Ok(runs.len())
}

/// Ends one user's unfinished runs as `interrupted`, publishing each end to
/// `subscriber`: an instance taking the user over from a dead one does this
/// before it builds the user's engine. Returns how many.
pub async fn end_runs_left_by_previous_owner(
    store: &Arc<dyn Store>,
    encoder: &dyn EventEncoder,
    user_id: &UserId,
    subscriber: Arc<dyn EventSink>,
) -> Result<usize, StoreError> {
    let mut runs = Vec::new();
    for status in [RunStatus::Running, RunStatus::Queued] {
        let filter = RunFilter {
            status: Some(status),
            thread_id: None,
            limit: u32::MAX,
        };
        runs.extend(store.list_runs(user_id, &filter).await?);
    }
    let mut seq = store.last_event_seq(user_id).await?;
    for run in &runs {
        seq += 1;
        end_run(store, encoder, run, seq, Some(Arc::clone(&subscriber))).await?;
    }
    if !runs.is_empty() {
        tracing::warn!(
            runs = runs.len(),
            "took over a user from a dead instance; ended its runs as interrupted"
        );
    }
    Ok(runs.len())
}

async fn end_run(
    store: &Arc<dyn Store>,
    encoder: &dyn EventEncoder,
    run: &RunRecord,
    seq: u64,
    subscriber: Option<Arc<dyn EventSink>>,
) -> Result<(), StoreError> {
    let event = RunEvent {
        seq,
        ts: cordon_core::now(),
        run_id: run.id.clone(),
        thread_id: run.thread_id.clone(),
        kind: RunEventKind::AgentError {
            agent: SUPERVISOR.to_owned(),
            code: ErrorCode::Interrupted,
            message: INTERRUPTED_MESSAGE.to_owned(),
        },
    };
    let outcome = RunOutcome {
        status: RunStatus::Interrupted,
        error_code: Some(ErrorCode::Interrupted.as_str().to_owned()),
        error_message: Some(INTERRUPTED_MESSAGE.to_owned()),
        answer: None,
    };
    store
        .end_run(
            &run.user_id,
            &event,
            encoder.encode(&event),
            &outcome,
            subscriber,
        )?
        .await
}
