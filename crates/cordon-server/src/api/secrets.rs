//! `/api/me/secrets`: the caller's own secrets (credentials their MCP servers are called with), stored sealed and never returned.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cordon_core::{SecretValue, is_secret_name};
use cordon_protocol::rest::{PutSecret, SecretNameView, SecretsView};

use crate::api::auth::invalid_body;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest secret value accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 8 * 1024;

/// `PUT /api/me/secrets/{name}` `{"value"}`: stores or replaces it; `204` once committed.
pub async fn put_secret(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
    body: Result<Json<PutSecret>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    let Json(body) = body.map_err(invalid_body)?;
    if body.value.is_empty() || body.value.len() > MAX_SECRET_BYTES {
        return Err(ApiError::bad_request(
            "invalid_secret",
            format!("a secret's value is 1 to {MAX_SECRET_BYTES} bytes"),
        ));
    }
    let value = SecretValue::new(body.value);
    state.store.put_secret(&user.user_id, &name, &value).await?;
    tracing::info!(user_id = %user.user_id, name, "stored a secret");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/me/secrets`: the names, never the values.
pub async fn list_secrets(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<SecretsView>, ApiError> {
    let names = state.store.secret_names(&user.user_id).await?;
    let secrets = names
        .into_iter()
        .map(|secret| SecretNameView {
            name: secret.name,
            updated_at: secret.updated_at,
        })
        .collect();
    Ok(Json(SecretsView { secrets }))
}

/// `DELETE /api/me/secrets/{name}`: `204`, or `404` when there is none of that name.
pub async fn delete_secret(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    match state.store.delete_secret(&user.user_id, &name).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound("secret")),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if is_secret_name(name) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "invalid_secret_name",
        "a secret's name is 1 to 64 letters, digits, `_` or `-`",
    ))
}
