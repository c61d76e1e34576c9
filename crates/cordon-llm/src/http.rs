//! The HTTP side shared by the real providers: the API key, timeouts, retries and error mapping.

use std::fmt;
use std::time::Duration;

use cordon_core::LlmError;
use futures_util::StreamExt;
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::retry::{RetryPolicy, retry_after};

/// Largest error body read to explain a failure.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// Longest provider message passed on to the user.
const MAX_ERROR_MESSAGE: usize = 300;

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
            .build()
            .unwrap_or_default();
        Self {
            client,
            key,
            retry,
            timeout,
        }
    }

    /// Sends the request `build` makes, retrying 429, 5xx, timeouts and connection
    /// failures with backoff; returns a successful response whose body is unread.
    pub async fn send(
        &self,
        provider: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, LlmError> {
        let mut retry = 0;
        loop {
            let (error, wait_hint) = match self.attempt(build()).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            let retryable = matches!(
                error,
                LlmError::RateLimited { .. } | LlmError::Unavailable(_)
            );
            let delay = retryable
                .then(|| self.retry.delay(retry, wait_hint))
                .flatten();
            let Some(delay) = delay else {
                return Err(error);
            };
            retry += 1;
            tracing::warn!(
                provider,
                retry,
                delay_ms = delay.as_millis() as u64,
                %error,
                "model call failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        request: RequestBuilder,
    ) -> Result<Response, (LlmError, Option<Duration>)> {
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => {
                return Err((
                    LlmError::Unavailable(format!(
                        "no response within {} s",
                        self.timeout.as_secs_f64()
                    )),
                    None,
                ));
            }
            Ok(Err(error)) => {
                let error = self.key.redact(&error.without_url().to_string());
                return Err((
                    LlmError::Unavailable(format!("could not reach the provider: {error}")),
                    None,
                ));
            }
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
            status => LlmError::BadRequest(format!("HTTP {}: {message}", status.as_u16())),
        };
        Err((error, wait))
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
    use super::*;

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
