//! The server's own secrets (the JWT signing secret, the key users' secrets are sealed with): from configuration, or generated once and kept in the data dir (mode 0600).

use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::RngCore;

/// Shortest secret accepted (bytes); HS256 and the sealing key want at least 256 bits.
pub const MIN_SECRET_LEN: usize = 32;

/// One of the server's secrets: the file it is kept in inside the data
/// directory, and what errors call it.
#[derive(Debug, Clone, Copy)]
pub struct ServerSecret {
    pub file: &'static str,
    pub name: &'static str,
}

/// Signs tokens (`--jwt-secret`, `CORDON_JWT_SECRET`).
pub const JWT_SECRET: ServerSecret = ServerSecret {
    file: "jwt_secret",
    name: "JWT secret",
};
/// Seals users' secrets at rest (`--secrets-key`, `CORDON_SECRETS_KEY`).
pub const SEALING_SECRET: ServerSecret = ServerSecret {
    file: "secrets_key",
    name: "secrets key",
};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the {0} must be at least {MIN_SECRET_LEN} bytes long")]
    TooShort(&'static str),
    #[error("could not read or create the {0} file in the data directory: {1}")]
    Io(&'static str, std::io::Error),
    /// Like ssh with a private key: a secret others can read is not used.
    #[error(
        "{path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` or remove it to have a new one made"
    )]
    Exposed { path: String, mode: u32 },
}

/// The configured secret, or the one stored in `data_dir`, created on first start.
pub fn load_or_create(
    which: ServerSecret,
    configured: Option<&str>,
    data_dir: &Path,
) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = configured {
        return check(which, secret.as_bytes().to_vec());
    }
    let path = data_dir.join(which.file);
    let io = |error| SecretError::Io(which.name, error);
    match std::fs::read_to_string(&path) {
        Ok(stored) => {
            check_private(which, &path)?;
            check(which, stored.trim().as_bytes().to_vec())
        }
        Err(error) if error.kind() == ErrorKind::NotFound => create(&path).map_err(io),
        Err(error) => Err(io(error)),
    }
}

fn check(which: ServerSecret, secret: Vec<u8>) -> Result<Vec<u8>, SecretError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(SecretError::TooShort(which.name));
    }
    Ok(secret)
}

/// The secret file must be readable by its owner only.
fn check_private(which: ServerSecret, path: &Path) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|error| SecretError::Io(which.name, error))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

fn create(path: &Path) -> std::io::Result<Vec<u8>> {
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
        let first = load_or_create(JWT_SECRET, None, dir.path()).unwrap();
        let second = load_or_create(JWT_SECRET, None, dir.path()).unwrap();
        assert_eq!(first, second);
        let mode = std::fs::metadata(dir.path().join(JWT_SECRET.file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(JWT_SECRET, None, dir.path()).unwrap();
        let path = dir.path().join(JWT_SECRET.file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(JWT_SECRET, None, dir.path()),
            Err(SecretError::Exposed { mode: 0o644, .. })
        ));
    }

    #[test]
    fn short_configured_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_or_create(JWT_SECRET, Some("short"), dir.path()),
            Err(SecretError::TooShort("JWT secret"))
        ));
    }
}
