//! Authentication: passwords (argon2id), tokens (HS256 JWT), their revocation, and the extractor that yields the caller.

pub mod address;
pub mod extract;
pub mod jwt;
pub mod password;
pub mod revocation;
pub mod secret;
pub mod signup;
pub mod throttle;

pub use address::ClientAddress;
pub use extract::{AdminUser, AuthUser};
pub use jwt::{TokenError, TokenKeys};
pub use password::PasswordHasher;
pub use revocation::TokenGenerations;
pub use signup::SignupThrottle;
pub use throttle::LoginThrottle;
