//! cordon-test-support: start a real cordon on `127.0.0.1:0` and talk to it like a client would.
//!
//! [`TestServer`] runs the real server (real SQLite file in a temporary data
//! dir) in the test's runtime; [`WsClient`] is a real tokio-tungstenite
//! WebSocket client speaking `cordon-protocol` frames; [`Browser`] drives a
//! real headless Chromium through chromedriver (WebDriver). Helpers panic with a
//! clear message on failure: they are for tests only.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic loudly on a broken assumption"
)]

mod browser;
pub mod child;
pub mod clickhouse;
pub mod cluster;
pub mod fake_llm;
pub mod mcp;
pub mod postgres;
mod server;
mod ws;

pub use browser::{Browser, BrowserSession};
pub use server::{Account, PASSWORD, TestServer};
pub use ws::{WsClient, first_of, is_terminal};
