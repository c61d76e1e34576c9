//! Issuing and verifying HS256 tokens (RFC 8725: one pinned algorithm, required exp/iss/aud, small leeway).

use std::time::Duration;

use cordon_core::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

const ISSUER: &str = "cordon";
const AUDIENCE: &str = "cordon";
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    /// The user's token generation at issue; tokens from before a sign-out
    /// carry an older one. Absent in tokens issued before it existed (0).
    #[serde(default, rename = "gen")]
    generation: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid or expired token")]
    Invalid,
    #[error("could not sign a token")]
    Signing,
}

/// A verified token: who it is for and until when it is good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: UserId,
    pub expires_at: OffsetDateTime,
    pub generation: u32,
}

/// The signing and verifying keys, plus the validation rules, built once.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A token for `user_id` in its current token `generation`, and when it expires.
    pub fn issue(
        &self,
        user_id: &UserId,
        generation: u32,
    ) -> Result<(String, OffsetDateTime), TokenError> {
        let now = cordon_core::now();
        let expires_at = now + self.ttl;
        let claims = Claims {
            sub: user_id.to_string(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
            generation,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| TokenError::Signing)?;
        Ok((token, expires_at))
    }

    /// Checks signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let user_id = UserId::parse(data.claims.sub).map_err(|_| TokenError::Invalid)?;
        let expires_at = OffsetDateTime::from_unix_timestamp(data.claims.exp)
            .map_err(|_| TokenError::Invalid)?;
        Ok(VerifiedToken {
            user_id,
            expires_at,
            generation: data.claims.generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_and_tampered_ones_do_not() {
        let keys = TokenKeys::new(SECRET, Duration::from_secs(60));
        let user = UserId::generate();
        let (token, _) = keys.issue(&user, 3).unwrap();
        let verified = keys.verify(&token).unwrap();
        assert_eq!((verified.user_id, verified.generation), (user, 3));
        let other = TokenKeys::new(b"another-secret-another-secret-xx", Duration::from_secs(60));
        assert!(other.verify(&token).is_err());
        assert!(keys.verify(&format!("{token}x")).is_err());
        assert!(keys.verify("").is_err());
    }

    #[test]
    fn expired_and_unsigned_tokens_are_rejected() {
        let keys = TokenKeys::new(SECRET, Duration::from_secs(60));
        let now = cordon_core::now().unix_timestamp();
        let expired = Claims {
            sub: "u-1".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now - 3600,
            exp: now - 600,
            generation: 0,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(keys.verify(&token).is_err());
        // alg "none": header {"alg":"none","typ":"JWT"}, no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1LTEiLCJpc3MiOiJjb3Jkb24iLCJhdWQiOiJjb3Jkb24iLCJpYXQiOjEsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(keys.verify(none).is_err());
    }
}
