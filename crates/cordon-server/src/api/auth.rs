//! `POST /api/auth/register`, `POST /api/auth/login` and `POST /api/auth/logout`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cordon_core::{StoreError, User, UserId};
use cordon_protocol::rest::{AuthResponse, Credentials, SignupAccepted, UserView};

use crate::auth::password::PasswordError;
use crate::auth::{AuthUser, ClientAddress, throttle};
use crate::error::ApiError;
use crate::state::AppState;

const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=64;
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;

/// Throttled per address before anything else, and a taken name is refused
/// before the (slow) hash, so neither sign-ups nor name probes run at speed.
/// Under `--quiet-signup` a taken name is hashed too and answered like a free
/// one (`202`, no token), so neither the answer nor its timing tells them apart.
pub async fn register(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(credentials) = body.map_err(invalid_body)?;
    let username = validate_username(&credentials.username)?;
    validate_password(&credentials.password)?;
    state
        .signup_throttle
        .admit(address)
        .map_err(|retry_after| ApiError::TooManySignups { retry_after })?;
    let quiet = state.config.quiet_signup;
    let taken = state
        .store
        .find_user_by_username(&username)
        .await?
        .is_some();
    if taken && !quiet {
        return Err(StoreError::UsernameTaken.into());
    }
    let password_hash = state
        .passwords
        .hash(credentials.password)
        .await
        .map_err(hashing_failed)?;
    let user = User {
        id: UserId::generate(),
        username,
        password_hash,
        created_at: cordon_core::now(),
        token_generation: 0,
        admin: false,
    };
    let created = if taken {
        Err(StoreError::UsernameTaken)
    } else {
        state.store.create_user(&user).await
    };
    match created {
        Ok(()) => tracing::info!(user_id = %user.id, "user registered"),
        // Taken before, or by a concurrent sign-up since the look-up.
        Err(StoreError::UsernameTaken) if quiet => {}
        Err(error) => return Err(error.into()),
    }
    if quiet {
        let accepted = SignupAccepted {
            status: "accepted".into(),
        };
        return Ok((StatusCode::ACCEPTED, Json(accepted)).into_response());
    }
    Ok((StatusCode::CREATED, Json(issue(&state, &user)?)).into_response())
}

/// The attempt is counted before the user is looked up and the password
/// hashed, so concurrent guesses cannot race past the throttle.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Json<AuthResponse>, ApiError> {
    let Json(credentials) = body.map_err(invalid_body)?;
    let keys = throttle::keys(&credentials.username, Some(address));
    state
        .login_throttle
        .begin(&keys)
        .map_err(|retry_after| ApiError::TooManyAttempts { retry_after })?;
    let user = state
        .store
        .find_user_by_username(credentials.username.trim())
        .await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    // Unknown user and wrong password take the same path and give the same answer.
    let valid = state
        .passwords
        .verify(credentials.password, stored_hash)
        .await
        .map_err(hashing_failed)?;
    match user {
        Some(user) if valid => {
            state.login_throttle.succeeded(&keys);
            Ok(Json(issue(&state, &user)?))
        }
        _ => Err(ApiError::InvalidCredentials("wrong username or password")),
    }
}

/// Signs the caller out everywhere: every token issued to them so far stops
/// working, on every request and socket, and their open sockets close (1008).
pub async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    let generation = state
        .store
        .revoke_tokens(&user.user_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    state.generations.record(&user.user_id, generation);
    let closed = state.hub.sign_out(&user.user_id, generation);
    if let Some(cluster) = &state.cluster {
        cluster.announce_sign_out(&user.user_id, generation).await;
    }
    tracing::info!(user_id = %user.user_id, closed, "signed out");
    Ok(StatusCode::NO_CONTENT)
}

fn issue(state: &AppState, user: &User) -> Result<AuthResponse, ApiError> {
    // The user row was read before the password check; a sign-out that
    // finished meanwhile is in the cache, and its generation must win.
    let generation = state.generations.record(&user.id, user.token_generation);
    let (token, expires_at) = state
        .tokens
        .issue(&user.id, generation)
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(AuthResponse {
        token,
        token_type: "Bearer".into(),
        expires_at,
        user_id: user.id.to_string(),
        user: UserView {
            id: user.id.to_string(),
            username: user.username.clone(),
        },
    })
}

fn hashing_failed(error: PasswordError) -> ApiError {
    match error {
        PasswordError::Busy => ApiError::Busy,
        PasswordError::Hashing => ApiError::Internal(error.to_string()),
    }
}

pub fn invalid_body(rejection: JsonRejection) -> ApiError {
    ApiError::bad_request("invalid_body", rejection.body_text())
}

fn validate_username(raw: &str) -> Result<String, ApiError> {
    let username = raw.trim();
    let length_ok = USERNAME_CHARS.contains(&username.chars().count());
    let chars_ok = username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-@+".contains(c));
    if length_ok && chars_ok {
        Ok(username.to_owned())
    } else {
        Err(ApiError::bad_request(
            "invalid_username",
            "username must be 3 to 64 characters: letters, digits and _ . - @ +",
        ))
    }
}

fn validate_password(password: &str) -> Result<(), ApiError> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_password",
            "password must be 8 to 1024 characters",
        ))
    }
}
