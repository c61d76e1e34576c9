//! The `/ws` endpoint: upgrade (token and Origin checked first), sessions, and the per-user fan-out hub.

pub mod frames;
pub mod hub;
pub mod session;
pub mod upgrade;
