//! `GET /ws`: checks the token and the `Origin`, then upgrades with small, explicit buffer limits.

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::Response;
use cordon_core::ConnectionId;
use cordon_protocol::ws::MAX_CLIENT_FRAME_BYTES;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::trace_context::TraceparentHeader;
use crate::ws::hub::SocketSlot;
use crate::ws::session::{Session, run_session};

/// Idle sockets must be cheap: tungstenite's defaults are a 128 KiB read
/// buffer and an unbounded write buffer per connection.
const READ_BUFFER_BYTES: usize = 4 * 1024;
const WRITE_BUFFER_BYTES: usize = 4 * 1024;
/// A cap, not an allocation: the buffer must hold the largest frame the server
/// sends (an answer of up to 2 MiB, `cordon_llm::limits`, six times that once
/// control characters are escaped), or the socket drops mid-run. A peer that
/// stops reading is closed by the write timeout, which frees it.
const MAX_WRITE_BUFFER_BYTES: usize = 16 * 1024 * 1024;
/// What the transport reads of one client message. The protocol's limit is
/// `MAX_CLIENT_FRAME_BYTES` (64 KiB), answered with `frame_too_large` and the
/// socket left open; only past this the socket closes (1009).
const MAX_TRANSPORT_MESSAGE_BYTES: usize = 16 * MAX_CLIENT_FRAME_BYTES;

/// The subprotocol the server speaks. A browser, which cannot set headers,
/// offers it with its token as a second one (`cordon.token.<jwt>`), so the
/// token is never in a URL; the server answers with this one.
pub const SUBPROTOCOL: &str = "cordon.v1";

/// `?after_seq=N`: resume from the log before going live, like a first `resume` frame.
#[derive(Debug, serde::Deserialize)]
pub struct UpgradeQuery {
    after_seq: Option<u64>,
}

pub async fn ws_handler(
    State(state): State<AppState>,
    user: AuthUser,
    TraceparentHeader(trace_parent): TraceparentHeader,
    headers: HeaderMap,
    query: Result<Query<UpgradeQuery>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // `AuthUser` already checked that the user exists and has not signed out.
    check_origin(&headers, &state.config.allowed_origins)?;
    let Query(query) = query?;
    let connection_id = ConnectionId::generate();
    let slot = claim_socket(&state, &user, &connection_id).await?;
    let session = Session::new(state.clone(), user, connection_id, query.after_seq, slot)
        .with_trace_parent(trace_parent);
    let sessions = state.sessions.clone();
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(MAX_TRANSPORT_MESSAGE_BYTES)
        .max_frame_size(MAX_TRANSPORT_MESSAGE_BYTES)
        .protocols([SUBPROTOCOL])
        .on_upgrade(move |socket| sessions.track_future(run_session(session, socket))))
}

/// One of the user's socket slots: on this instance, and with several
/// instances across all live ones (claimed atomically, so a burst cannot
/// overshoot either count).
pub(crate) async fn claim_socket(
    state: &AppState,
    user: &AuthUser,
    connection_id: &ConnectionId,
) -> Result<SocketSlot, ApiError> {
    let limit = state.config.max_sockets_per_user;
    let too_many = ApiError::TooManyConnections { limit };
    let slot = state
        .hub
        .claim_socket(&user.user_id, limit)
        .ok_or(too_many)?;
    let Some(cluster) = &state.cluster else {
        return Ok(slot);
    };
    let claim = cluster
        .claim_socket(&user.user_id, connection_id, limit)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?
        .ok_or(ApiError::TooManyConnections { limit })?;
    Ok(slot.with_cluster_claim(claim))
}

/// Cross-site WebSocket hijacking guard: a browser always sends `Origin`; it
/// must be this server's own origin or one configured as allowed. Clients
/// that send no `Origin` (not browsers) are not subject to it.
fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    if host.is_some_and(|host| host.eq_ignore_ascii_case(origin_host)) {
        return Ok(());
    }
    Err(ApiError::Forbidden)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static(host));
        if let Some(origin) = origin {
            headers.insert(ORIGIN, HeaderValue::from_static(origin));
        }
        headers
    }

    #[test]
    fn same_origin_and_allowed_origins_pass_others_fail() {
        assert!(check_origin(&headers(None, "a:1"), &[]).is_ok());
        assert!(check_origin(&headers(Some("http://a:1"), "a:1"), &[]).is_ok());
        assert!(check_origin(&headers(Some("http://evil.example"), "a:1"), &[]).is_err());
        let allowed = vec!["http://app.example".to_owned()];
        assert!(check_origin(&headers(Some("http://app.example"), "a:1"), &allowed).is_ok());
    }
}
