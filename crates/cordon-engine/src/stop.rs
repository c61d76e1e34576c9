//! `StopSignal`: how a run is told to stop (cancel, interrupt, lost writes), with the first reason kept.

use std::sync::{Arc, OnceLock};

use cordon_core::ErrorCode;
use tokio_util::sync::CancellationToken;

use crate::registry::RunFailure;

/// Stops one run, with the reason; the first reason wins.
#[derive(Clone, Default)]
pub(crate) struct StopSignal {
    token: CancellationToken,
    why: Arc<OnceLock<ErrorCode>>,
}

impl StopSignal {
    pub(crate) fn stop(&self, why: ErrorCode) {
        let _ = self.why.set(why);
        self.token.cancel();
    }

    /// Resolves once `stop` was called, with the failure the run ends with.
    pub(crate) async fn stopped(&self) -> RunFailure {
        self.token.cancelled().await;
        self.failure()
    }

    /// The failure the run ends with, if `stop` was called.
    pub(crate) fn already(&self) -> Option<RunFailure> {
        self.token.is_cancelled().then(|| self.failure())
    }

    fn failure(&self) -> RunFailure {
        match self.why.get().copied().unwrap_or(ErrorCode::Cancelled) {
            ErrorCode::Interrupted => RunFailure::new(
                ErrorCode::Interrupted,
                "a newer message on this thread interrupted the run",
            ),
            ErrorCode::StorageFailed => RunFailure::new(
                ErrorCode::StorageFailed,
                "the run's events could not be stored",
            ),
            code => RunFailure::new(code, "the run was cancelled"),
        }
    }
}
