//! `MeteredLlm`: the provider as one run sees it; records every call's tokens and cost in the store.

use std::sync::Arc;

use async_trait::async_trait;
use cordon_core::{
    LlmCallRecord, LlmError, LlmObserver, LlmProvider, LlmRequest, LlmResponse, RunId, Usage,
    UserStore,
};

/// Wraps the shared provider for one run of one user. Usage is queued to the
/// store as each call returns, so it is committed before the run's outcome.
pub(crate) struct MeteredLlm {
    inner: Arc<dyn LlmProvider>,
    store: UserStore,
    run_id: RunId,
}

impl MeteredLlm {
    pub(crate) fn new(inner: Arc<dyn LlmProvider>, store: UserStore, run_id: RunId) -> Self {
        Self {
            inner,
            store,
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

    async fn complete(
        &self,
        request: &LlmRequest,
        observer: &dyn LlmObserver,
    ) -> Result<LlmResponse, LlmError> {
        let response = self.inner.complete(request, observer).await?;
        let usage = response.usage;
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
        Ok(response)
    }
}
