//! `AuthUser`: the extractor that verifies the token of every request (Bearer header, or `token` query for browsers).

use axum::extract::{FromRequestParts, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use cordon_core::UserId;
use time::OffsetDateTime;

use crate::auth::revocation::TokenStanding;
use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: UserId,
    pub expires_at: OffsetDateTime,
    /// The token generation the caller's token was issued in.
    pub generation: u32,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)
            .or_else(|| query_token(parts))
            .ok_or(ApiError::Unauthorized)?;
        let verified = state
            .tokens
            .verify(&token)
            .map_err(|_| ApiError::Unauthorized)?;
        // A token of a user who no longer exists is as invalid as a forged
        // one; a signed-out one says so, so a client can tell the user why.
        let standing = state
            .generations
            .check(state.store.as_ref(), &verified.user_id, verified.generation)
            .await?;
        match standing {
            TokenStanding::Current => {}
            TokenStanding::SignedOut => return Err(ApiError::SignedOut),
            TokenStanding::UnknownUser => return Err(ApiError::Unauthorized),
        }
        Ok(AuthUser {
            user_id: verified.user_id,
            expires_at: verified.expires_at,
            generation: verified.generation,
        })
    }
}

fn bearer_token(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn query_token(parts: &Parts) -> Option<String> {
    Query::<TokenQuery>::try_from_uri(&parts.uri).ok()?.0.token
}
