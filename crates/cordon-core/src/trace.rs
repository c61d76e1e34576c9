//! `TraceParent`: a request's W3C trace context as a plain, checked value, so it can travel with a run to the engine without this crate knowing OpenTelemetry.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a `traceparent` header was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero)")]
pub struct TraceParentError;

/// A W3C `traceparent` (`00-{trace id}-{parent span id}-{flags}`), checked
/// for shape so whatever reads it later can trust the ids. Lower case, as
/// the recommendation writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceParent(String);

impl TraceParent {
    /// Only version `00` is understood; a later version's first four fields
    /// are read the same way, as the recommendation asks of a version-00 parser.
    pub fn parse(raw: &str) -> Result<Self, TraceParentError> {
        let raw = raw.trim();
        let mut fields = raw.split('-');
        let (Some(version), Some(trace_id), Some(span_id), Some(flags)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(TraceParentError);
        };
        let rest_ok = if version == "00" {
            fields.next().is_none()
        } else {
            version != "ff"
        };
        let shaped = hex_of(version, 2)
            && hex_of(trace_id, 32)
            && hex_of(span_id, 16)
            && hex_of(flags, 2)
            && !all_zero(trace_id)
            && !all_zero(span_id);
        if !(shaped && rest_ok) {
            return Err(TraceParentError);
        }
        let canonical = format!("00-{trace_id}-{span_id}-{flags}").to_ascii_lowercase();
        Ok(Self(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// 32 hex digits.
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }

    /// 16 hex digits: the caller's span, the parent of ours.
    pub fn parent_span_id(&self) -> &str {
        &self.0[36..52]
    }

    /// Whether the caller sampled the trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.0[53..55], 16).is_ok_and(|flags| flags & 1 == 1)
    }
}

fn hex_of(field: &str, len: usize) -> bool {
    field.len() == len && field.bytes().all(|b| b.is_ascii_hexdigit())
}

fn all_zero(field: &str) -> bool {
    field.bytes().all(|b| b == b'0')
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TraceParent {
    type Error = TraceParentError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<TraceParent> for String {
    fn from(parent: TraceParent) -> Self {
        parent.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_gives_its_parts() {
        let parent = TraceParent::parse(VALID).unwrap();
        assert_eq!(parent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.parent_span_id(), "00f067aa0ba902b7");
        assert!(parent.sampled());
        let upper = TraceParent::parse(&VALID.to_ascii_uppercase()).unwrap();
        assert_eq!(upper, parent);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for raw in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(raw).is_err(), "{raw}");
        }
        let later = TraceParent::parse(&format!("01{}-more", &VALID[2..])).unwrap();
        assert_eq!(later.as_str(), VALID);
    }
}
