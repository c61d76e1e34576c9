//! `MeteredLlm`: the provider as one run sees it; each call is admitted by the user's budget first, and its tokens and cost are recorded in the store, counted against the budget and reported to analytics.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use cordon_core::{
    AnalyticsSink, ErrorCode, LlmCallRecord, LlmError, LlmObserver, LlmProvider, LlmRequest,
    LlmResponse, ModelCall, Spend, Usage, UserExecutionContext, UserStore,
};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::budget::{BudgetLedger, BudgetPermit};

/// Wraps the shared provider for one run of one user. Usage is queued to the
/// store as each call returns, so it is committed before the run's outcome.
pub(crate) struct MeteredLlm {
    inner: Arc<dyn LlmProvider>,
    store: UserStore,
    budget: Arc<BudgetLedger>,
    analytics: Option<Arc<dyn AnalyticsSink>>,
    /// The run's root context: calls are recorded for its run and thread.
    ctx: UserExecutionContext,
    /// The pipeline agent whose calls these are now (agents run one after another).
    agent: Mutex<String>,
}

impl MeteredLlm {
    pub(crate) fn new(
        inner: Arc<dyn LlmProvider>,
        store: UserStore,
        budget: Arc<BudgetLedger>,
        analytics: Option<Arc<dyn AnalyticsSink>>,
        ctx: &UserExecutionContext,
    ) -> Self {
        Self {
            inner,
            store,
            budget,
            analytics,
            ctx: ctx.clone(),
            agent: Mutex::default(),
        }
    }

    /// The next calls are `agent`'s.
    pub(crate) fn calls_for(&self, agent: &str) {
        *self.agent.lock().unwrap_or_else(PoisonError::into_inner) = agent.to_owned();
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
            started_at: self.budget.now(),
            started: Instant::now(),
        };
        let span = crate::trace::chat(
            self.inner.name(),
            self.inner.model(),
            self.ctx.user_id(),
            self.ctx.thread_id(),
            self.ctx.root_run_id(),
        );
        let result = self
            .inner
            .complete(request, &meter)
            .instrument(span.clone())
            .await;
        crate::trace::record_chat(&span, request, &result);
        match &result {
            Ok(response) => meter.settle(Some(response.usage), None),
            Err(error) => meter.settle(None, Some(error.code())),
        }
        result
    }
}

impl MeteredLlm {
    /// Records the call's usage; answers what it spent.
    fn record(&self, usage: Usage) -> Spend {
        let cost_usd = self.inner.cost_usd(usage);
        tracing::debug!(
            run_id = %self.ctx.root_run_id(),
            provider = self.inner.name(),
            model = self.inner.model(),
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            cost_usd,
            "model call"
        );
        self.store.record_llm_call(&LlmCallRecord {
            run_id: self.ctx.root_run_id().clone(),
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

    fn report(&self, call: &CallMeter<'_>, usage: Usage, error: Option<ErrorCode>) {
        let Some(analytics) = &self.analytics else {
            return;
        };
        analytics.model_called(ModelCall {
            user_id: self.ctx.user_id().clone(),
            thread_id: self.ctx.thread_id().clone(),
            run_id: self.ctx.root_run_id().clone(),
            agent: self
                .agent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            model: self.inner.model().to_owned(),
            error_code: error.map(|code| code.as_str().to_owned()),
            started_at: call.started_at,
            duration_ms: u64::try_from(call.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd: self.inner.cost_usd(usage),
        });
    }
}

/// One call in flight: passes the stream on to the run's observer and keeps
/// the latest usage reported, recorded once when the call settles or is dropped.
struct CallMeter<'a> {
    llm: &'a MeteredLlm,
    /// `Some` until recorded: the usage reported so far.
    seen: Mutex<Option<Usage>>,
    /// The call's place in the budget; `Some` until the call settles.
    permit: Mutex<Option<BudgetPermit<'a>>>,
    observer: &'a dyn LlmObserver,
    started_at: OffsetDateTime,
    started: Instant,
}

impl CallMeter<'_> {
    /// Settles the call once: records `usage` (or what was seen, if `None`;
    /// a call that failed after the provider reported usage was still
    /// billed), gives its place in the budget back and reports it.
    fn settle(&self, usage: Option<Usage>, error: Option<ErrorCode>) {
        let Some(permit) = self
            .permit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let usage = usage.or(seen);
        if let Some(usage) = usage {
            permit.settle(self.llm.record(usage));
        }
        self.llm.report(self, usage.unwrap_or_default(), error);
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
    /// A call dropped before it returned (its run was stopped): the usage
    /// reported so far is still spent.
    fn drop(&mut self) {
        self.settle(None, Some(ErrorCode::Cancelled));
    }
}
