//! `WsClient`: a real WebSocket client that sends client frames and reads server frames.

use std::time::Duration;

use cordon_protocol::ServerFrame;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const FRAME_TIMEOUT: Duration = Duration::from_secs(15);

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub connection_id: String,
}

impl WsClient {
    /// Connects with a Bearer token and reads the greeting.
    pub async fn connect(url: &str, token: &str) -> Self {
        let mut request = url.into_client_request().expect("ws request");
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
        request.headers_mut().insert("authorization", bearer);
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connect");
        Self::from_stream(stream).await
    }

    /// Connects and reads the greeting, or the status and JSON body of a
    /// refused upgrade (`429 too_many_connections`, …).
    pub async fn connect_or_refusal(url: &str, token: &str) -> Result<Self, (u16, Value)> {
        let mut request = url.into_client_request().expect("ws request");
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
        request.headers_mut().insert("authorization", bearer);
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Ok(Self::from_stream(stream).await),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response.body().clone().unwrap_or_default();
                Err((
                    response.status().as_u16(),
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                ))
            }
            Err(other) => panic!("the upgrade failed without an answer: {other}"),
        }
    }

    /// Connects and reads the greeting, or `None` if either fails (a server on its way out).
    pub async fn try_connect(url: &str, token: &str) -> Option<Self> {
        let mut request = url.into_client_request().ok()?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
        request.headers_mut().insert("authorization", bearer);
        let (stream, _) = tokio_tungstenite::connect_async(request).await.ok()?;
        let mut client = Self {
            stream,
            connection_id: String::new(),
        };
        let greeting = client.try_next_json(FRAME_TIMEOUT).await?;
        client.connection_id = greeting["connection_id"].as_str()?.to_owned();
        Some(client)
    }

    /// Wraps a socket opened by the test itself and reads the greeting.
    pub async fn from_stream(stream: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        let mut client = Self {
            stream,
            connection_id: String::new(),
        };
        match client.next_frame().await {
            ServerFrame::ConnectionEstablished { connection_id, .. } => {
                client.connection_id = connection_id
            }
            other => panic!("expected connection_established, got {other:?}"),
        }
        client
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text))
            .await
            .expect("ws send");
    }

    /// The next text frame as raw JSON (skips control frames).
    pub async fn next_json(&mut self) -> Value {
        self.try_next_json(FRAME_TIMEOUT)
            .await
            .expect("a frame before the timeout")
    }

    /// The next text frame within `timeout`, or `None` if none came or the socket closed.
    pub async fn try_next_json(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => {
                    return Some(serde_json::from_str(&text).expect("server sent JSON"));
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next text frame, parsed into the protocol type.
    pub async fn next_frame(&mut self) -> ServerFrame {
        serde_json::from_value(self.next_json().await).expect("a known server frame")
    }

    /// Asks `content` in a new thread and waits until its run started;
    /// returns the `agent_started` frame (its `run_id`, `thread_id`).
    pub async fn start_run(&mut self, content: &str) -> Value {
        self.send_json(&serde_json::json!({"type": "user_message", "content": content}))
            .await;
        let frames = self.collect_until(|f| f["type"] == "agent_started").await;
        frames.last().cloned().unwrap_or_default()
    }

    /// Asks `content` in a new thread; the frames until its run ends
    /// (`agent_completed` or `agent_error`).
    pub async fn ask(&mut self, content: &str) -> Vec<Value> {
        self.send_json(&serde_json::json!({"type": "user_message", "content": content}))
            .await;
        self.collect_until(is_terminal).await
    }

    /// Frames up to and including the first for which `done` holds; heartbeat pings are skipped.
    pub async fn collect_until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next_json().await;
            if frame["type"] == "ping" {
                continue;
            }
            let finished = done(&frame);
            frames.push(frame);
            if finished {
                return frames;
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code and reason.
    pub async fn closed(&mut self, timeout: Duration) -> Option<(u16, String)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?
            {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// The first frame of type `kind` among `frames`; panics (a test failure) if none.
pub fn first_of<'a>(frames: &'a [Value], kind: &str) -> &'a Value {
    frames
        .iter()
        .find(|f| f["type"] == kind)
        .unwrap_or_else(|| panic!("no `{kind}` frame in {} frames", frames.len()))
}

/// Whether a frame ends a run: `agent_completed` or `agent_error`.
pub fn is_terminal(frame: &Value) -> bool {
    frame["type"] == "agent_completed" || frame["type"] == "agent_error"
}
