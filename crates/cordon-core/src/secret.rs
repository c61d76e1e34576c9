//! `SecretValue` and `SecretName`: a user's stored credential (for their MCP servers), kept out of every `Debug` and log.

use std::fmt;

/// A secret's value. Its `Debug` never shows it; read it with [`expose`](Self::expose).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// One of a user's secrets as listed: its name and when it was last set, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretName {
    pub name: String,
    pub updated_at: time::OffsetDateTime,
}

/// Whether `name` may name a secret: 1 to 64 letters, digits, `_` or `-`.
pub fn is_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        assert!(!format!("{:?}", SecretValue::new("hunter2")).contains("hunter2"));
    }

    #[test]
    fn names_are_short_and_plain() {
        assert!(is_secret_name("github_token-2"));
        assert!(!is_secret_name(""));
        assert!(!is_secret_name("a.b"));
        assert!(!is_secret_name(&"x".repeat(65)));
    }
}
