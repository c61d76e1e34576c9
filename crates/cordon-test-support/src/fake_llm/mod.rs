//! A scripted fake of the model providers' HTTP APIs on `127.0.0.1:0`, speaking real SSE.
//!
//! One server answers both `POST /v1/chat/completions` (OpenAI) and
//! `POST /v1/messages` (Anthropic). Replies come from a queue pushed by the
//! test, then from a fallback responder; every request is recorded, and a
//! stream the client drops before its end counts as a disconnect.

pub mod anthropic;
pub mod openai;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One piece of a streamed reply.
#[derive(Debug, Clone)]
pub enum StreamPiece {
    /// Raw event-stream text (e.g. `data: {...}\n\n`), sent as one chunk.
    Sse(String),
    /// Wait this long, sending an SSE comment every 10 ms (so a closed client is noticed).
    Pause(Duration),
}

/// What the fake answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200 text/event-stream` with these frames.
    Stream(Vec<StreamPiece>),
    /// A non-2xx answer with a JSON body and an optional `Retry-After`.
    Status {
        status: u16,
        body: String,
        retry_after: Option<String>,
    },
    /// A redirect to `location` (e.g. 307 to another host).
    Redirect { status: u16, location: String },
    /// This reply, after sending nothing for `delay` (a provider that hangs before its headers).
    Delayed(Duration, Box<Reply>),
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub at: Instant,
}

type Responder = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

struct FakeState {
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Responder>>,
    requests: Mutex<Vec<RecordedRequest>>,
    expected_key: Mutex<Option<String>>,
    disconnects: AtomicUsize,
    /// When the last stream was dropped by its client.
    disconnected_at: Mutex<Option<Instant>>,
    completed: AtomicUsize,
    disconnected: Notify,
}

pub struct FakeLlm {
    pub addr: SocketAddr,
    state: Arc<FakeState>,
    task: JoinHandle<()>,
}

impl FakeLlm {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState {
            script: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            expected_key: Mutex::new(None),
            disconnects: AtomicUsize::new(0),
            disconnected_at: Mutex::new(None),
            completed: AtomicUsize::new(0),
            disconnected: Notify::new(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/v1/messages", post(handle))
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// Root URL, the Anthropic `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `.../v1`, the OpenAI-compatible `base_url`.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues the reply to the next request.
    pub fn push(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    /// Answers requests once the queue is empty (default: 500).
    pub fn respond_with(
        &self,
        responder: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) {
        *self.state.fallback.lock().unwrap() = Some(Arc::new(responder));
    }

    /// Rejects requests without this key (`Authorization: Bearer` or `x-api-key`) with 401,
    /// echoing the key it got in the message, as OpenAI does.
    pub fn require_key(&self, key: &str) {
        *self.state.expected_key.lock().unwrap() = Some(key.to_owned());
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Streams the client dropped before their end.
    pub fn disconnects(&self) -> usize {
        self.state.disconnects.load(Ordering::SeqCst)
    }

    /// When a client last dropped a stream before its end (the server saw the socket close).
    pub fn disconnected_at(&self) -> Option<Instant> {
        *self.state.disconnected_at.lock().unwrap()
    }

    /// Streams sent to their end.
    pub fn completed_streams(&self) -> usize {
        self.state.completed.load(Ordering::SeqCst)
    }

    /// Waits until a client dropped a stream; false if none did within `timeout`.
    pub async fn wait_disconnect(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.disconnected.notified();
            if self.disconnects() > 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.disconnects() > 0;
            }
        }
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(state): State<Arc<FakeState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = RecordedRequest {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    };
    state.requests.lock().unwrap().push(request.clone());
    let expected = state.expected_key.lock().unwrap().clone();
    if let Some(expected) = expected {
        let given = request
            .headers
            .get("x-api-key")
            .cloned()
            .or_else(|| {
                request
                    .headers
                    .get("authorization")
                    .map(|v| v.trim_start_matches("Bearer ").to_owned())
            })
            .unwrap_or_default();
        if given != expected {
            return openai::error(
                401,
                &format!("Incorrect API key provided: {given}."),
                "invalid_request_error",
            )
            .into_response_parts();
        }
    }
    let scripted = state.script.lock().unwrap().pop_front();
    let reply = match scripted {
        Some(reply) => reply,
        None => {
            let fallback = state.fallback.lock().unwrap().clone();
            match fallback {
                Some(responder) => responder(&request),
                None => openai::error(500, "the fake has no scripted reply", "server_error"),
            }
        }
    };
    let reply = match reply {
        Reply::Delayed(delay, reply) => {
            tokio::time::sleep(delay).await;
            *reply
        }
        reply => reply,
    };
    reply.into_response_parts_with(state)
}

impl Reply {
    fn into_response_parts(self) -> Response {
        match self {
            Reply::Status {
                status,
                body,
                retry_after,
            } => {
                let mut response = (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    [("content-type", "application/json")],
                    body,
                )
                    .into_response();
                if let Some(retry_after) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", retry_after.parse().unwrap());
                }
                response
            }
            Reply::Redirect { status, location } => (
                StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT),
                [("location", location)],
            )
                .into_response(),
            Reply::Stream(_) | Reply::Delayed(..) => {
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }

    fn into_response_parts_with(self, state: Arc<FakeState>) -> Response {
        let Reply::Stream(frames) = self else {
            return self.into_response_parts();
        };
        let guard = StreamGuard {
            state,
            finished: false,
        };
        let stream = futures_util::stream::unfold(
            (VecDeque::from(frames), guard),
            |(mut frames, mut guard)| async move {
                let frame = match frames.pop_front() {
                    Some(frame) => frame,
                    None => {
                        guard.finish();
                        return None;
                    }
                };
                let bytes = match frame {
                    StreamPiece::Sse(text) => Bytes::from(text),
                    StreamPiece::Pause(total) => {
                        let step = Duration::from_millis(10).min(total);
                        tokio::time::sleep(step).await;
                        if let Some(rest) = total.checked_sub(step).filter(|r| !r.is_zero()) {
                            frames.push_front(StreamPiece::Pause(rest));
                        }
                        Bytes::from_static(b": keep-alive\n\n")
                    }
                };
                Some((Ok::<_, std::convert::Infallible>(bytes), (frames, guard)))
            },
        );
        (
            [
                ("content-type", "text/event-stream"),
                ("cache-control", "no-cache"),
            ],
            Body::from_stream(stream),
        )
            .into_response()
    }
}

/// Counts a stream as completed or, when dropped early, as a client disconnect.
struct StreamGuard {
    state: Arc<FakeState>,
    finished: bool,
}

impl StreamGuard {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.finished {
            self.state.completed.fetch_add(1, Ordering::SeqCst);
        } else {
            *self.state.disconnected_at.lock().unwrap() = Some(Instant::now());
            self.state.disconnects.fetch_add(1, Ordering::SeqCst);
            self.state.disconnected.notify_waiters();
        }
    }
}

/// Splits `text` into pieces of at most `size` characters (never inside a character).
pub fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|chunk| chunk.iter().collect())
        .collect()
}
