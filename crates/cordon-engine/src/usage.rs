//! `MeteredLlm`: the provider as one run sees it; each call is admitted by the user's budget first, and its tokens and cost are recorded in the store and counted against the budget.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use cordon_core::{
    LlmCallRecord, LlmError, LlmObserver, LlmProvider, LlmRequest, LlmResponse, RunId, Spend,
    Usage, UserStore,
};

use crate::budget::{BudgetLedger, BudgetPermit};

/// Wraps the shared provider for one run of one user. Usage is queued to the
/// store as each call returns, so it is committed before the run's outcome.
pub(crate) struct MeteredLlm {
    inner: Arc<dyn LlmProvider>,
    store: UserStore,
    budget: Arc<BudgetLedger>,
    run_id: RunId,
}

impl MeteredLlm {
    pub(crate) fn new(
        inner: Arc<dyn LlmProvider>,
        store: UserStore,
        budget: Arc<BudgetLedger>,
        run_id: RunId,
    ) -> Self {
        Self {
            inner,
            store,
            budget,
            run_id,
        }
    }
}

#[async_trait]
impl LlmProvider for MeteredLlm {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    fn cost_usd(&self, usage: Usage) -> f64 {
        self.inner.cost_usd(usage)
    }

    /// Records the call's usage when it returns, or, if the call is
    /// dropped midway (the run was cancelled or interrupted), the usage the
    /// provider had reported by then.
    async fn complete(
        &self,
        request: &LlmRequest,
        observer: &dyn LlmObserver,
    ) -> Result<LlmResponse, LlmError> {
        let permit = self.budget.admit().await?;
        let meter = CallMeter {
            llm: self,
            seen: Mutex::new(None),
            permit: Mutex::new(Some(permit)),
            observer,
        };
        let response = self.inner.complete(request, &meter).await?;
        meter.settle(Some(response.usage));
        Ok(response)
    }
}

impl MeteredLlm {
    /// Records the call's usage; answers what it spent.
    fn record(&self, usage: Usage) -> Spend {
        let cost_usd = self.inner.cost_usd(usage);
        tracing::debug!(
            run_id = %self.run_id,
            provider = self.inner.name(),
            model = self.inner.model(),
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            cost_usd,
            "model call"
        );
        self.store.record_llm_call(&LlmCallRecord {
            run_id: self.run_id.clone(),
            model: self.inner.model().to_owned(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd,
            at: self.budget.now(),
        });
        Spend {
            tokens: usage.input_tokens.saturating_add(usage.output_tokens),
            cost_usd,
        }
    }
}

/// One call in flight: passes the stream on to the run's observer and keeps
/// the latest usage reported, recorded once when the call settles or is dropped.
struct CallMeter<'a> {
    llm: &'a MeteredLlm,
    /// `Some` until recorded: the usage reported so far.
    seen: Mutex<Option<Usage>>,
    /// The call's place in the budget, given back when it settles.
    permit: Mutex<Option<BudgetPermit<'a>>>,
    observer: &'a dyn LlmObserver,
}

impl CallMeter<'_> {
    /// Records `usage` (or what was seen, if `None`), once: a call that
    /// failed after the provider reported usage was still billed.
    fn settle(&self, usage: Option<Usage>) {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let permit = self
            .permit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(usage) = usage.or(seen) {
            let spent = self.llm.record(usage);
            if let Some(permit) = permit {
                permit.settle(spent);
            }
        }
    }
}

impl LlmObserver for CallMeter<'_> {
    fn on_thinking(&self, text: &str) {
        self.observer.on_thinking(text);
    }

    fn on_delta(&self, text: &str) {
        self.observer.on_delta(text);
    }

    fn on_usage(&self, usage: Usage) {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(usage);
        self.observer.on_usage(usage);
    }
}

impl Drop for CallMeter<'_> {
    /// A call dropped before it returned: the usage reported so far is still spent.
    fn drop(&mut self) {
        self.settle(None);
    }
}
