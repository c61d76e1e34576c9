//! Budgets over REST: `GET /api/me/budget` (the caller's use and what is left) and the admin routes `GET|PUT|DELETE /api/admin/users/{username}/budget`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use cordon_core::{BudgetLimits, BudgetPeriod, User, UserId};
use cordon_protocol::rest::{BudgetLimitsView, BudgetPeriodView, BudgetView};

use crate::api::auth::invalid_body;
use crate::auth::{AdminUser, AuthUser};
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /api/me/budget`.
pub async fn my_budget(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<BudgetView>, ApiError> {
    let stored = state
        .store
        .get_user(&user.user_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(Json(budget_view(&state, &stored).await?))
}

/// `GET /api/admin/users/{username}/budget`.
pub async fn user_budget(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(username): Path<String>,
) -> Result<Json<BudgetView>, ApiError> {
    let user = named_user(&state, &username).await?;
    Ok(Json(budget_view(&state, &user).await?))
}

/// `PUT /api/admin/users/{username}/budget` with every limit (`null` or
/// absent: none): replaces the user's defaults from the next model call on.
pub async fn put_user_budget(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(username): Path<String>,
    body: Result<Json<BudgetLimitsView>, JsonRejection>,
) -> Result<Json<BudgetView>, ApiError> {
    let Json(body) = body.map_err(invalid_body)?;
    let limits = checked_limits(body)?;
    let user = named_user(&state, &username).await?;
    state
        .store
        .put_budget_override(&user.id, Some(&limits))
        .await?;
    budget_changed(&state, &user.id);
    tracing::info!(admin = %admin.0.user_id, user_id = %user.id, ?limits, "set a user's budget");
    Ok(Json(budget_view(&state, &user).await?))
}

/// `DELETE /api/admin/users/{username}/budget`: the user is back on the defaults.
pub async fn delete_user_budget(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(username): Path<String>,
) -> Result<Json<BudgetView>, ApiError> {
    let user = named_user(&state, &username).await?;
    state.store.put_budget_override(&user.id, None).await?;
    budget_changed(&state, &user.id);
    tracing::info!(admin = %admin.0.user_id, user_id = %user.id, "reset a user's budget");
    Ok(Json(budget_view(&state, &user).await?))
}

async fn named_user(state: &AppState, username: &str) -> Result<User, ApiError> {
    state
        .store
        .find_user_by_username(username)
        .await?
        .ok_or(ApiError::NotFound("user"))
}

/// Tells the user's engine, if it lives here; another instance reads the
/// change within seconds.
fn budget_changed(state: &AppState, user_id: &UserId) {
    if let Some(engine) = state.runs.factory().existing(user_id) {
        engine.budget_changed();
    }
}

fn checked_limits(body: BudgetLimitsView) -> Result<BudgetLimits, ApiError> {
    for usd in [body.daily_usd, body.monthly_usd].into_iter().flatten() {
        if !usd.is_finite() || usd < 0.0 {
            return Err(ApiError::bad_request(
                "invalid_budget",
                "a dollar limit is a finite number of at least 0",
            ));
        }
    }
    Ok(BudgetLimits {
        daily_usd: body.daily_usd,
        monthly_usd: body.monthly_usd,
        daily_tokens: body.daily_tokens,
        monthly_tokens: body.monthly_tokens,
    })
}

async fn budget_view(state: &AppState, user: &User) -> Result<BudgetView, ApiError> {
    let own = state.store.budget_override(&user.id).await?;
    let limits = own.unwrap_or(state.config.engine.budget);
    let now = state.config.clock.now();
    let mut periods = Vec::new();
    for period in [BudgetPeriod::Day, BudgetPeriod::Month] {
        let used = state.store.spend_since(&user.id, period.start(now)).await?;
        let limit = limits.of(period);
        periods.push(BudgetPeriodView {
            period: period.as_str().to_owned(),
            used_tokens: used.tokens,
            used_usd: used.cost_usd,
            limit_tokens: limit.tokens,
            limit_usd: limit.usd,
            remaining_tokens: limit.tokens.map(|l| l.saturating_sub(used.tokens)),
            remaining_usd: limit.usd.map(|l| (l - used.cost_usd).max(0.0)),
            resets_at: period.next_reset(now),
        });
    }
    Ok(BudgetView {
        username: user.username.clone(),
        source: if own.is_some() { "user" } else { "default" }.to_owned(),
        limits: BudgetLimitsView {
            daily_usd: limits.daily_usd,
            monthly_usd: limits.monthly_usd,
            daily_tokens: limits.daily_tokens,
            monthly_tokens: limits.monthly_tokens,
        },
        periods,
    })
}
