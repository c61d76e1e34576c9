//! Bodies of the REST API under `/api`.

use cordon_core::Multitask;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `POST /api/messages` and `POST /api/threads/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    pub content: String,
    /// Only on `POST /api/messages`: the thread to post to (none: a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// Default `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multitask: Option<Multitask>,
}

/// `202 Accepted`: the message is stored and its run started or queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptedView {
    pub run_id: String,
    pub thread_id: String,
    /// `seq` of the run's first event in your log.
    pub seq: u64,
    /// `running` or `queued`.
    pub status: String,
    /// For a queued run: its place on the thread (1 runs next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
}

/// `POST /api/runs/{id}/cancel`: `cancelling` (it was running and is being
/// stopped) or `cancelled` (it was queued and ended without starting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelView {
    pub run_id: String,
    pub status: String,
}

/// `POST /api/runs/{id}/approvals/{call_id}`: a person's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalBody {
    /// `approve` or `reject`.
    pub decision: ApprovalVerb,
    /// With `reject`: why, for the model.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalVerb {
    Approve,
    Reject,
}

/// The answer that was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub run_id: String,
    pub call_id: String,
    pub decision: cordon_core::Decision,
    /// Whether the run went on (every call it waited for is answered).
    pub resumed: bool,
}

/// `POST /api/auth/register` and `POST /api/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(alias = "email")]
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
}

/// Answer to a successful register or login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthResponse {
    pub token: String,
    pub token_type: String,
    #[serde(with = "crate::timestamp")]
    pub expires_at: OffsetDateTime,
    pub user_id: String,
    pub user: UserView,
}

/// Answer to a sign-up under `--quiet-signup`: the same for a free and a taken
/// name, and without a token (the client signs in next).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignupAccepted {
    /// Always `accepted`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadView {
    pub id: String,
    pub title: String,
    #[serde(with = "crate::timestamp")]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::timestamp")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    pub thread_id: String,
    pub role: String,
    pub content: String,
    pub run_id: Option<String>,
    #[serde(with = "crate::timestamp")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub id: String,
    pub thread_id: String,
    pub agent: String,
    pub status: String,
    #[serde(with = "crate::timestamp")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub duration_ms: Option<u64>,
    pub error: Option<ErrorBody>,
    /// Tokens and cost of the run's model calls (zeros when it made none).
    #[serde(default)]
    pub usage: RunUsageView,
}

/// `usage` of a run: the model it called and what that cost.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunUsageView {
    /// The model called (the most-called one if several); `null` when no model was called.
    pub model: Option<String>,
    /// Model calls the run made (one per model/tool step).
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// US dollars from the configured price table; 0 for unpriced models.
    pub cost_usd: f64,
}

/// Usage of one model, in `GET /api/usage`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelUsageView {
    pub model: String,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// `GET /api/usage`: the caller's usage summed over all of their runs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UsageView {
    /// Runs that made at least one model call.
    pub runs: u64,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Per model, most expensive first.
    pub by_model: Vec<ModelUsageView>,
}

/// `{"code": "...", "message": "..."}`: the shape of every error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// `{"error": {...}}`: every non-2xx HTTP answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorResponse {
    pub error: ErrorBody,
    /// With `410 cursor_expired`: the oldest `seq` still in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_seq: Option<u64>,
}

/// `PUT /api/me/secrets/{name}`. `Debug` never shows the value.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    pub value: String,
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PutSecret { value: <redacted> }")
    }
}

/// One of `GET /api/me/secrets`: a name and when it was set, never the value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretNameView {
    pub name: String,
    #[serde(with = "crate::timestamp")]
    pub updated_at: OffsetDateTime,
}

/// `GET /api/me/secrets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretsView {
    pub secrets: Vec<SecretNameView>,
}

/// A user's budget limits: each `null` (or absent) is no limit. The body of
/// `PUT /api/admin/users/{username}/budget`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetLimitsView {
    #[serde(default)]
    pub daily_usd: Option<f64>,
    #[serde(default)]
    pub monthly_usd: Option<f64>,
    #[serde(default)]
    pub daily_tokens: Option<u64>,
    #[serde(default)]
    pub monthly_tokens: Option<u64>,
}

/// One period of a budget: what was used, the limits, what is left (`null`
/// where there is no limit) and when it resets (UTC calendar day or month).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetPeriodView {
    /// `day` or `month`.
    pub period: String,
    pub used_tokens: u64,
    pub used_usd: f64,
    pub limit_tokens: Option<u64>,
    pub limit_usd: Option<f64>,
    pub remaining_tokens: Option<u64>,
    pub remaining_usd: Option<f64>,
    #[serde(with = "crate::timestamp")]
    pub resets_at: OffsetDateTime,
}

/// `GET /api/me/budget` and the admin budget routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    pub username: String,
    /// `default` (the server's configured limits) or `user` (set by an admin).
    pub source: String,
    pub limits: BudgetLimitsView,
    pub periods: Vec<BudgetPeriodView>,
}
