//! `TraceparentHeader`: the W3C `traceparent` header of a request or `/ws` upgrade, the parent of the runs it starts; absent or malformed, the runs start a trace of their own.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cordon_core::TraceParent;

/// The header's value when it is one (a malformed one is ignored, as the
/// W3C recommendation asks, never an error for the request).
#[derive(Debug, Clone, Default)]
pub struct TraceparentHeader(pub Option<TraceParent>);

impl<S: Send + Sync> FromRequestParts<S> for TraceparentHeader {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let parent = parts
            .headers
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .and_then(|raw| TraceParent::parse(raw).ok());
        Ok(Self(parent))
    }
}
