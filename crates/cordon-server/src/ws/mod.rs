//! The `/ws` endpoint: upgrade (token and Origin checked first), sessions, replay from the log, and the per-user fan-out hub.

pub mod frames;
pub mod hub;
pub mod replay;
pub mod session;
pub mod upgrade;
