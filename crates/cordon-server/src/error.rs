//! `ApiError`: every HTTP failure as a status plus `{"error":{"code","message"}}`; the one place "not yours" becomes 404.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cordon_core::{ErrorCode, StoreError};
use cordon_engine::{ApprovalError, ServiceError};
use cordon_protocol::rest::{ApiErrorResponse, ErrorBody};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("missing, invalid or expired token")]
    Unauthorized,
    /// A genuine token that a sign-out (`POST /api/auth/logout`) ended.
    #[error("this session was signed out; sign in again")]
    SignedOut,
    #[error("{0}")]
    InvalidCredentials(&'static str),
    /// Too many failed logins; try again after the given time.
    #[error("too many failed sign-in attempts; try again later")]
    TooManyAttempts { retry_after: std::time::Duration },
    #[error("origin not allowed")]
    Forbidden,
    /// An admin route, and the caller is not an admin.
    #[error("this needs an admin (`cordon admin grant USERNAME`)")]
    AdminOnly,
    /// Missing, or owned by another user: the two are indistinguishable on purpose.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The password hashers' queue is full.
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
    /// This address made its hourly allowance of sign-ups.
    #[error("too many sign-ups from this address; try again later")]
    TooManySignups { retry_after: std::time::Duration },
    /// The user already has `limit` sockets open.
    #[error("you already have {limit} connections open; close one first")]
    TooManyConnections { limit: usize },
    /// A message or cancel the run service refused.
    #[error(transparent)]
    Service(ServiceError),
    /// The cursor is older than the retained log.
    #[error("events up to seq {} were deleted by retention", .oldest_seq - 1)]
    CursorExpired { oldest_seq: u64 },
    #[error("the database is not reachable")]
    Unavailable(String),
    /// No ClickHouse is configured, or it did not answer.
    #[error("analytics are unavailable: {0}")]
    AnalyticsUnavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::SignedOut => (StatusCode::UNAUTHORIZED, "signed_out"),
            ApiError::InvalidCredentials(_) => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ApiError::TooManyAttempts { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
            }
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "origin_not_allowed"),
            ApiError::AdminOnly => (StatusCode::FORBIDDEN, "admin_only"),
            ApiError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::TooManySignups { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_signups"),
            ApiError::TooManyConnections { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_connections")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Service(error) => (service_status(error), error.code()),
            ApiError::CursorExpired { .. } => (StatusCode::GONE, "cursor_expired"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::AnalyticsUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "analytics_unavailable")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The HTTP status of each way the run service refuses.
fn service_status(error: &ServiceError) -> StatusCode {
    match error {
        ServiceError::InvalidMessage(_) => StatusCode::BAD_REQUEST,
        ServiceError::MessageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ServiceError::ThreadNotFound | ServiceError::RunNotFound => StatusCode::NOT_FOUND,
        ServiceError::Rejected(ErrorCode::ThreadBusy) => StatusCode::CONFLICT,
        ServiceError::Rejected(ErrorCode::UserConcurrencyLimit) => StatusCode::TOO_MANY_REQUESTS,
        ServiceError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ServiceError::InvalidApproval(_) => StatusCode::BAD_REQUEST,
        ServiceError::Approval(error) => match error {
            ApprovalError::NotFound => StatusCode::NOT_FOUND,
            ApprovalError::AlreadyResolved | ApprovalError::Ambiguous => StatusCode::CONFLICT,
            ApprovalError::Expired => StatusCode::GONE,
            ApprovalError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        },
        ServiceError::Rejected(_) | ServiceError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A query string that does not parse: `400 invalid_query`, for every route.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        ApiError::Service(error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UsernameTaken => ApiError::Conflict {
                code: "username_taken",
                message: "that username is already taken".into(),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(cause) | ApiError::Unavailable(cause) = &self {
            // The cause goes to the log only; clients get a generic message.
            tracing::error!(%cause, code, "request failed");
        }
        let oldest_seq = match &self {
            ApiError::CursorExpired { oldest_seq } => Some(*oldest_seq),
            _ => None,
        };
        let body = ApiErrorResponse {
            error: ErrorBody {
                code: code.to_owned(),
                message: self.to_string(),
            },
            oldest_seq,
        };
        let retry_after = self.retry_after();
        let mut response = (status, Json(body)).into_response();
        if let Some(retry_after) = retry_after {
            // Whole seconds, rounded up: retrying earlier is refused again.
            let seconds = (retry_after.as_secs_f64().ceil() as u64).max(1).to_string();
            if let Ok(value) = axum::http::HeaderValue::from_str(&seconds) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl ApiError {
    /// How long a refused caller should wait (the `Retry-After` header).
    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ApiError::TooManyAttempts { retry_after }
            | ApiError::TooManySignups { retry_after }
            | ApiError::Service(ServiceError::RateLimited { retry_after }) => Some(*retry_after),
            ApiError::Busy => Some(std::time::Duration::from_secs(1)),
            _ => None,
        }
    }
}
