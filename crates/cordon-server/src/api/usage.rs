//! `GET /api/usage`: the caller's model usage (tokens and cost) summed over all of their runs; `GET /api/admin/usage`: every user's, from ClickHouse.

use axum::Json;
use axum::extract::{Query, State};
use cordon_analytics::{UsageRange, UsageReport};
use cordon_core::ModelUsage;
use cordon_protocol::rest::{ModelUsageView, UsageView};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::{AdminUser, AuthUser};
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

/// `GET /api/admin/usage?from=&to=` (RFC 3339; the last 24 hours by
/// default), for admins: every user's runs, tokens and cost, per model too,
/// errors by code and run durations, read from ClickHouse.
pub async fn admin_usage(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(range): Query<RangeQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let warehouse = state.analytics.as_ref().ok_or_else(|| {
        ApiError::AnalyticsUnavailable("no --clickhouse-url is configured".into())
    })?;
    let range = range.resolve(state.config.clock.now())?;
    let report = warehouse
        .usage(range)
        .await
        .map_err(|error| ApiError::AnalyticsUnavailable(error.to_string()))?;
    Ok(Json(report))
}

/// `from` and `to` of a usage report, as RFC 3339 timestamps.
#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

impl RangeQuery {
    fn resolve(self, now: OffsetDateTime) -> Result<UsageRange, ApiError> {
        let parse = |raw: Option<String>, default: OffsetDateTime| match raw {
            None => Ok(default),
            Some(raw) => OffsetDateTime::parse(&raw, &Rfc3339).map_err(|_| {
                ApiError::bad_request("invalid_range", format!("{raw:?} is not an RFC 3339 time"))
            }),
        };
        let to = parse(self.to, now)?;
        let from = parse(self.from, to - time::Duration::DAY)?;
        if from >= to {
            return Err(ApiError::bad_request(
                "invalid_range",
                "`from` must be before `to`",
            ));
        }
        Ok(UsageRange { from, to })
    }
}
