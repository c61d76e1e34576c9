//! `SealingKey`: users' secrets sealed at rest with XChaCha20-Poly1305, each bound to its user and name.
//!
//! A sealed value is a random 24-byte nonce followed by the ciphertext. The
//! user's id and the secret's name are the associated data, so a sealed
//! value copied into another user's row (or under another name) does not
//! open: it reads as a storage failure, never as the other user's secret.

use std::fmt;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use cordon_core::{SecretValue, StoreError};

const NONCE_LEN: usize = 24;

/// The key secrets are sealed with. `Debug` never shows it.
#[derive(Clone)]
pub struct SealingKey(Arc<XChaCha20Poly1305>);

impl SealingKey {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Arc::new(XChaCha20Poly1305::new(key.into())))
    }

    /// The key HKDF-SHA256 derives from `material` (a configured or generated secret).
    pub fn derive(material: &[u8]) -> Self {
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 8,160: expanding cannot fail.
        let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, material)
            .expand(b"cordon user secrets v1", &mut key);
        Self::new(&key)
    }

    pub(crate) fn seal(&self, user_id: &str, name: &str, value: &SecretValue) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = associated(user_id, name);
        let payload = Payload {
            msg: value.expose().as_bytes(),
            aad: &aad,
        };
        // Encrypting into a Vec cannot fail for inputs under 256 GiB.
        let ciphertext = self
            .0
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        [nonce.as_slice(), &ciphertext].concat()
    }

    pub(crate) fn open(
        &self,
        user_id: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<SecretValue, StoreError> {
        let broken = || StoreError::Backend(format!("the stored secret `{name}` does not open"));
        if sealed.len() < NONCE_LEN {
            return Err(broken());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = associated(user_id, name);
        let payload = Payload {
            msg: ciphertext,
            aad: &aad,
        };
        let plain = self
            .0
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| broken())?;
        String::from_utf8(plain)
            .map(SecretValue::new)
            .map_err(|_| broken())
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

fn associated(user_id: &str, name: &str) -> Vec<u8> {
    format!("cordon-secret\0{user_id}\0{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_name_and_key() {
        let key = SealingKey::new(&[7; 32]);
        let value = SecretValue::new("ghp_s3cret");
        let sealed = key.seal("alice", "github", &value);
        assert!(!sealed.windows(10).any(|w| w == b"ghp_s3cret"));
        assert_eq!(key.open("alice", "github", &sealed).ok(), Some(value));
        assert!(key.open("bob", "github", &sealed).is_err());
        assert!(key.open("alice", "gitlab", &sealed).is_err());
        assert!(
            SealingKey::new(&[8; 32])
                .open("alice", "github", &sealed)
                .is_err()
        );
        assert!(key.open("alice", "github", &sealed[..10]).is_err());
    }
}
