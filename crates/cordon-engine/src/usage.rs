//! `MeteredLlm`: the provider as one run sees it; records every call's tokens and cost in the store.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use cordon_core::{
    LlmCallRecord, LlmError, LlmObserver, LlmProvider, LlmRequest, LlmResponse, RunId, ThreadId,
    Usage, UserStore,
};
use tracing::Instrument;

/// Wraps the shared provider for one run of one user. Usage is queued to the
/// store as each call returns, so it is committed before the run's outcome.
pub(crate) struct MeteredLlm {
    inner: Arc<dyn LlmProvider>,
    store: UserStore,
    run_id: RunId,
    /// For the `chat` spans' `cordon.thread_id`.
    thread_id: ThreadId,
}

impl MeteredLlm {
    pub(crate) fn new(
        inner: Arc<dyn LlmProvider>,
        store: UserStore,
        run_id: RunId,
        thread_id: ThreadId,
    ) -> Self {
        Self {
            inner,
            store,
            run_id,
            thread_id,
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
        let meter = CallMeter {
            llm: self,
            seen: Mutex::new(None),
            observer,
        };
        let span = crate::trace::chat(
            self.inner.name(),
            self.inner.model(),
            self.store.user_id(),
            &self.thread_id,
            &self.run_id,
        );
        let result = self
            .inner
            .complete(request, &meter)
            .instrument(span.clone())
            .await;
        crate::trace::record_chat(&span, request, &result);
        let response = result?;
        meter.settle(Some(response.usage));
        Ok(response)
    }
}

impl MeteredLlm {
    fn record(&self, usage: Usage) {
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
        });
    }
}

/// One call in flight: passes the stream on to the run's observer and keeps
/// the latest usage reported, recorded once when the call settles or is dropped.
struct CallMeter<'a> {
    llm: &'a MeteredLlm,
    /// `Some` until recorded: the usage reported so far.
    seen: Mutex<Option<Usage>>,
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
        if let Some(usage) = usage.or(seen) {
            self.llm.record(usage);
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
