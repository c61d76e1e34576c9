//! Identifier newtypes: one type per concept so a `ThreadId` can never be passed where a `UserId` is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Ids that look like someone forgot to set a real one. Accepting them would
/// let unrelated requests collapse onto one shared identity.
const PLACEHOLDER_IDS: &[&str] = &[
    "default",
    "none",
    "null",
    "nil",
    "undefined",
    "test",
    "anonymous",
    "placeholder",
    "unknown",
    "0",
];

const MAX_ID_LEN: usize = 128;

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} `{value}` is a placeholder, not a real id")]
    Placeholder { kind: &'static str, value: String },
    #[error("{kind} is longer than {MAX_ID_LEN} characters")]
    TooLong { kind: &'static str },
    #[error("{kind} may only contain ASCII letters, digits, '-' and '_'")]
    InvalidCharacters { kind: &'static str },
}

fn validate(kind: &'static str, value: &str) -> Result<(), IdError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if PLACEHOLDER_IDS.contains(&trimmed.to_ascii_lowercase().as_str()) {
        return Err(IdError::Placeholder {
            kind,
            value: trimmed.to_owned(),
        });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { kind });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::InvalidCharacters { kind });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id received from outside.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value)?;
                Ok(Self(value))
            }

            /// A fresh random, time-ordered id (UUID v7).
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

id_type!(
    /// A registered account.
    UserId,
    "user_id"
);
id_type!(
    /// A conversation owned by one user.
    ThreadId,
    "thread_id"
);
id_type!(
    /// One execution of the agent pipeline for one message.
    RunId,
    "run_id"
);
id_type!(
    /// One inbound request (a socket frame or an HTTP call), for tracing.
    RequestId,
    "request_id"
);
id_type!(
    /// One live WebSocket connection.
    ConnectionId,
    "connection_id"
);
id_type!(
    /// One stored message in a thread.
    MessageId,
    "message_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = RunId::generate();
        let b = RunId::generate();
        assert_ne!(a, b);
        assert!(RunId::parse(a.as_str()).is_ok());
    }

    #[test]
    fn empty_and_placeholder_ids_are_rejected() {
        assert_eq!(UserId::parse("  "), Err(IdError::Empty { kind: "user_id" }));
        for placeholder in ["default", "None", "TEST", "anonymous", "undefined"] {
            assert!(
                matches!(
                    ThreadId::parse(placeholder),
                    Err(IdError::Placeholder { .. })
                ),
                "{placeholder} accepted"
            );
        }
    }

    #[test]
    fn odd_characters_and_long_ids_are_rejected() {
        assert!(matches!(
            RunId::parse("a/b"),
            Err(IdError::InvalidCharacters { .. })
        ));
        assert!(matches!(
            RunId::parse("x".repeat(200)),
            Err(IdError::TooLong { .. })
        ));
    }
}
