//! The JWT signing secret: from configuration, or generated once and kept in the data dir (mode 0600).

use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::RngCore;

/// File holding the generated secret inside the data directory.
pub const SECRET_FILE: &str = "jwt_secret";
/// Shortest secret accepted (bytes); HS256 wants at least 256 bits.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the JWT secret must be at least {MIN_SECRET_LEN} bytes long")]
    TooShort,
    #[error("could not read or create the JWT secret file in the data directory: {0}")]
    Io(#[from] std::io::Error),
    /// Like ssh with a private key: a secret others can read is not used.
    #[error(
        "{path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` or remove it to have a new one made"
    )]
    Exposed { path: String, mode: u32 },
}

/// The configured secret, or the one stored in `data_dir`, created on first start.
pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = configured {
        return check(secret.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(stored) => {
            check_private(&path)?;
            check(stored.trim().as_bytes().to_vec())
        }
        Err(error) if error.kind() == ErrorKind::NotFound => create(&path),
        Err(error) => Err(error.into()),
    }
}

fn check(secret: Vec<u8>) -> Result<Vec<u8>, SecretError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(SecretError::TooShort);
    }
    Ok(secret)
}

/// The secret file must be readable by its owner only.
fn check_private(path: &Path) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

fn create(path: &Path) -> Result<Vec<u8>, SecretError> {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(secret.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_secret_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(None, dir.path()).unwrap();
        let second = load_or_create(None, dir.path()).unwrap();
        assert_eq!(first, second);
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(None, dir.path()).unwrap();
        let path = dir.path().join(SECRET_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(None, dir.path()),
            Err(SecretError::Exposed { mode: 0o644, .. })
        ));
    }

    #[test]
    fn short_configured_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_or_create(Some("short"), dir.path()),
            Err(SecretError::TooShort)
        ));
    }
}
