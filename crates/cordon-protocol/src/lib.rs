//! cordon-protocol: the JSON shapes on the wire, and nothing else.
//!
//! [`ws`] holds the frames of `/ws` (client→server [`ClientFrame`], server→client
//! [`ServerFrame`]); [`rest`] holds the request and response bodies of `/api`.
//! Both are plain serde types shared by the server, the load generator and
//! the tests, so the three can never disagree on a field name.

pub mod rest;
pub mod ws;

pub use ws::{ClientFrame, FrameEncoder, RunEnvelope, ServerFrame};

/// Timestamps on the wire are RFC 3339 in UTC.
pub mod timestamp {
    pub use time::serde::rfc3339::{deserialize, serialize};
}
