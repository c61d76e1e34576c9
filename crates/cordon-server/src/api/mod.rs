//! REST handlers under `/api`, plus liveness and readiness.

pub mod auth;
pub mod budget;
pub mod events;
pub mod health;
pub mod messages;
pub mod runs;
pub mod secrets;
pub mod threads;
pub mod usage;
