//! Deployment validation for closure reports: GET a health URL, record status and latency.

use std::time::{Duration, Instant};

/// Outcome of one health probe; `status` is `None` when no HTTP response arrived.
#[derive(Clone, Debug)]
pub struct HealthCheck {
    pub url: String,
    pub status: Option<u16>,
    pub latency_ms: u128,
    pub error: Option<String>,
}

impl HealthCheck {
    /// Healthy means a 2xx answer.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

pub fn check(url: &str) -> HealthCheck {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        // A 503 is a finding to report, not a transport error.
        .http_status_as_error(false)
        .build()
        .into();
    let started = Instant::now();
    let result = agent.get(url).call();
    let latency_ms = started.elapsed().as_millis();
    match result {
        Ok(resp) => HealthCheck {
            url: url.to_string(),
            status: Some(resp.status().as_u16()),
            latency_ms,
            error: None,
        },
        Err(e) => HealthCheck {
            url: url.to_string(),
            status: None,
            latency_ms,
            error: Some(e.to_string()),
        },
    }
}
