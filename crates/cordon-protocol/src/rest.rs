//! Bodies of the REST API under `/api`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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
}
