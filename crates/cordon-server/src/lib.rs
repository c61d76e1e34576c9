//! cordon-server: the HTTP/WebSocket face of cordon.
//!
//! [`app`] builds the axum router (auth, REST, `/ws`, health) over an
//! [`AppState`]; [`Server::run`] serves it on an already-bound listener until
//! a shutdown future resolves, then drains: no new runs, running runs get a
//! grace period, sockets get a close frame, queued writes are flushed.
//!
//! Every request is authenticated by [`auth::AuthUser`]; every engine comes
//! from the `ExecutionEngineFactory`; every event reaches a user's sockets
//! through that user's [`ws::hub::UserChannel`] only.

pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod server;
pub mod state;
pub mod streams;
pub mod trace_context;
pub mod web;
pub mod ws;

pub use config::ServerConfig;
pub use cordon_store::DEFAULT_WRITE_QUEUE_CAPACITY;
pub use error::ApiError;
pub use server::{ServeError, Server, app};
pub use state::AppState;
