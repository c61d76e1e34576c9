//! Crash recovery: at start-up, every run a dead process left `queued` or `running` ends as `interrupted`, with a terminal event in its user's log.

use std::collections::HashMap;
use std::sync::Arc;

use cordon_core::{
    ErrorCode, EventEncoder, RunEvent, RunEventKind, RunOutcome, RunStatus, Store, StoreError,
    UserId,
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
            .end_abandoned_run(&run.user_id, &event, encoder.encode(&event), &outcome, None)
            .await?;
    }
    if !runs.is_empty() {
        tracing::warn!(
            runs = runs.len(),
            "ended runs a previous process left unfinished as interrupted"
        );
    }
    Ok(runs.len())
}
