//! `AuthUser`: the extractor that verifies the token of every request (Bearer header; on the `/ws` upgrade also a subprotocol or `?token=`).

use axum::extract::{FromRequestParts, Query};
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
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
            .or_else(|| websocket_token(parts))
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

/// A signed-in user with the `admin` flag, read from the store on every
/// request (so `cordon admin revoke` takes effect at once); anyone else
/// gets `403 admin_only`.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let stored = state.store.get_user(&user.user_id).await?;
        match stored {
            Some(stored) if stored.admin => Ok(AdminUser(user)),
            _ => Err(ApiError::AdminOnly),
        }
    }
}

fn bearer_token(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Offered as a WebSocket subprotocol by browsers, which cannot set headers:
/// `Sec-WebSocket-Protocol: cordon.v1, cordon.token.<jwt>`.
const PROTOCOL_TOKEN_PREFIX: &str = "cordon.token.";

/// Only the `/ws` upgrade takes a token outside the `Authorization` header:
/// from the subprotocol list, or (for older clients) `?token=`. No other
/// route accepts a token in its URL, where proxies and browser history keep it.
fn websocket_token(parts: &Parts) -> Option<String> {
    if parts.uri.path() != "/ws" {
        return None;
    }
    protocol_token(parts).or_else(|| query_token(parts))
}

fn protocol_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(PROTOCOL_TOKEN_PREFIX))
        .map(str::to_owned)
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn query_token(parts: &Parts) -> Option<String> {
    Query::<TokenQuery>::try_from_uri(&parts.uri).ok()?.0.token
}
