//! The HTTP side shared by the real providers: the API key, timeouts, retries, redirects and error mapping.
//!
//! A failed call is retried only when the provider cannot have done the work
//! (the connection was never made, or it answered 429, 500, 503 or 529), so a
//! timed-out call is never billed twice; a redirect is followed only to the
//! same scheme, host and port, so the key never reaches another host.

use std::fmt;
use std::time::Duration;

use cordon_core::LlmError;
use futures_util::StreamExt;
use reqwest::{RequestBuilder, Response, StatusCode, Url, redirect};

use crate::retry::{RetryPolicy, retry_after};

/// Largest error body read to explain a failure.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// Longest provider message passed on to the user.
const MAX_ERROR_MESSAGE: usize = 300;
/// Same-origin redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// An API key: never printed by `Debug`, and scrubbed from any text passed on.
#[derive(Clone, Default)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key as a header value marked sensitive, so HTTP tracing never prints it.
    pub fn header_value(&self) -> reqwest::header::HeaderValue {
        let mut value = reqwest::header::HeaderValue::from_str(&self.0)
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every occurrence of the key replaced.
    pub fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_owned();
        }
        text.replace(&self.0, "[redacted]")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "ApiKey(none)"
        } else {
            "ApiKey([redacted])"
        })
    }
}

/// A client for one provider endpoint.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub client: reqwest::Client,
    pub key: ApiKey,
    pub retry: RetryPolicy,
    /// Longest wait for the response headers, and for each chunk of the stream.
    pub timeout: Duration,
}

impl HttpSettings {
    pub fn new(key: ApiKey, retry: RetryPolicy, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(redirect::Policy::custom(same_origin_only))
            .build()
            .unwrap_or_default();
        Self {
            client,
            key,
            retry,
            timeout,
        }
    }

    /// Sends the request `build` makes, retrying with backoff while a retry is
    /// known to be safe; returns a successful response whose body is unread.
    pub async fn send(
        &self,
        provider: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, LlmError> {
        let mut retry = 0;
        loop {
            let failure = match self.attempt(build()).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            let delay = failure
                .retry_safe
                .then(|| self.retry.delay(retry, failure.wait))
                .flatten();
            let Some(delay) = delay else {
                return Err(failure.error);
            };
            retry += 1;
            tracing::warn!(
                provider,
                retry,
                delay_ms = delay.as_millis() as u64,
                error = %failure.error,
                "model call failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, request: RequestBuilder) -> Result<Response, Failure> {
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            // The request may have reached the provider, which may bill it: not retried.
            Err(_) => {
                return Err(Failure::unsafe_to_retry(LlmError::Unavailable(format!(
                    "no response within {} s",
                    self.timeout.as_secs_f64()
                ))));
            }
            Ok(Err(error)) => return Err(self.send_failure(error)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let wait = retry_after(response.headers());
        let message = self.error_message(response).await;
        let error = match status {
            StatusCode::TOO_MANY_REQUESTS => LlmError::RateLimited { retry_after: wait },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => LlmError::Auth,
            status if status.is_server_error() || status.as_u16() == 529 => {
                LlmError::Unavailable(format!("HTTP {}: {message}", status.as_u16()))
            }
            StatusCode::REQUEST_TIMEOUT => LlmError::Unavailable(format!("HTTP 408: {message}")),
            status if status.is_redirection() => LlmError::Malformed(format!(
                "HTTP {}: the provider redirected the call; point base_url at the final address",
                status.as_u16()
            )),
            status => LlmError::BadRequest(format!("HTTP {}: {message}", status.as_u16())),
        };
        Err(Failure {
            error,
            wait,
            retry_safe: provider_did_no_work(status),
        })
    }

    /// A request that got no response: retried only if it never left this machine.
    fn send_failure(&self, error: reqwest::Error) -> Failure {
        if error.is_redirect() {
            return Failure::unsafe_to_retry(LlmError::Malformed(
                "the provider redirected the call to another host, where cordon does not send \
                 the API key; point base_url at the final address"
                    .into(),
            ));
        }
        // The connection was never made: the provider cannot have seen the call.
        let retry_safe = error.is_connect();
        let text = self.key.redact(&error_chain(&error.without_url()));
        Failure {
            error: LlmError::Unavailable(format!("could not reach the provider: {text}")),
            wait: None,
            retry_safe,
        }
    }

    /// The provider's own explanation (`error.message` of the JSON body), short and without the key.
    async fn error_message(&self, response: Response) -> String {
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        let read = async {
            while let Some(Ok(chunk)) = stream.next().await {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_ERROR_BODY {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(self.timeout, read).await;
        let text = String::from_utf8_lossy(&body);
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|value| {
                value["error"]["message"]
                    .as_str()
                    .or_else(|| value["error"].as_str())
                    .or_else(|| value["message"].as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| text.trim().to_owned());
        let message = if message.is_empty() {
            "no details".to_owned()
        } else {
            message
        };
        cordon_core::text::truncate_chars(&self.key.redact(&message), MAX_ERROR_MESSAGE)
    }
}

/// Why one attempt failed, and whether trying again cannot bill the work twice.
struct Failure {
    error: LlmError,
    /// The provider's `Retry-After`.
    wait: Option<Duration>,
    retry_safe: bool,
}

impl Failure {
    fn unsafe_to_retry(error: LlmError) -> Self {
        Self {
            error,
            wait: None,
            retry_safe: false,
        }
    }
}

/// Statuses with which the provider says it refused or failed the call before
/// doing billable work. 502, 504 and 408 are not among them: a gateway or proxy
/// gave up waiting, and the provider behind it may have answered and billed.
fn provider_did_no_work(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 503 | 529)
}

/// Follows a redirect only to the origin the call was made to, so the API key
/// header (which reqwest keeps on redirects, except `Authorization` across hosts)
/// never reaches another host.
fn same_origin_only(attempt: redirect::Attempt<'_>) -> redirect::Action {
    let first = attempt.previous().first().cloned();
    match first {
        _ if attempt.previous().len() > MAX_REDIRECTS => attempt.error("too many redirects"),
        Some(first) if same_origin(&first, attempt.url()) => attempt.follow(),
        _ => attempt.error("a redirect to another origin"),
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// An error with its causes (reqwest's own text hides them).
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Parses one streamed JSON payload, turning garbage into a clear error.
pub fn parse_chunk(provider: &str, data: &str) -> Result<serde_json::Value, LlmError> {
    serde_json::from_str(data).map_err(|error| {
        LlmError::Malformed(format!(
            "{provider} sent an unreadable stream chunk: {error}"
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests panic on a broken assumption")]
    use super::*;

    #[test]
    fn only_calls_the_provider_refused_are_retried() {
        for status in [429, 500, 503, 529] {
            assert!(provider_did_no_work(StatusCode::from_u16(status).unwrap()));
        }
        for status in [400, 401, 408, 502, 504] {
            assert!(!provider_did_no_work(StatusCode::from_u16(status).unwrap()));
        }
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        let url = |text: &str| Url::parse(text).unwrap();
        assert!(same_origin(
            &url("https://api.x.com/v1/a"),
            &url("https://api.x.com:443/v2")
        ));
        assert!(!same_origin(
            &url("https://api.x.com/v1"),
            &url("http://api.x.com/v1")
        ));
        assert!(!same_origin(
            &url("https://api.x.com/v1"),
            &url("https://evil.com/v1")
        ));
        assert!(!same_origin(
            &url("http://127.0.0.1:80/"),
            &url("http://127.0.0.1:81/")
        ));
    }

    #[test]
    fn the_key_never_shows() {
        let key = ApiKey::new("sk-secret-123456");
        assert_eq!(format!("{key:?}"), "ApiKey([redacted])");
        assert_eq!(
            key.redact("Incorrect API key provided: sk-secret-123456."),
            "Incorrect API key provided: [redacted]."
        );
    }
}
