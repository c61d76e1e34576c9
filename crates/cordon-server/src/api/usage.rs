//! `GET /api/usage`: the caller's model usage (tokens and cost) summed over all of their runs.

use axum::Json;
use axum::extract::State;
use cordon_core::ModelUsage;
use cordon_protocol::rest::{ModelUsageView, UsageView};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn get_usage(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<UsageView>, ApiError> {
    let totals = state.store.usage_totals(&user.user_id).await?;
    Ok(Json(UsageView {
        runs: totals.runs,
        calls: totals.calls,
        input_tokens: totals.input_tokens,
        output_tokens: totals.output_tokens,
        cost_usd: totals.cost_usd,
        by_model: totals.by_model.iter().map(model_usage_view).collect(),
    }))
}

pub(crate) fn model_usage_view(usage: &ModelUsage) -> ModelUsageView {
    ModelUsageView {
        model: usage.model.clone(),
        calls: usage.calls,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cost_usd: usage.cost_usd,
    }
}
