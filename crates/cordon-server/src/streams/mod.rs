//! Standard streams: cordon's runs as the SSE streams that stock chat front ends speak (the Vercel AI SDK UI message stream, AG-UI), over the same run service, log and isolation as `/ws`.
//!
//! A request is authenticated like any other, its message goes through
//! `RunService` (so limits, double texting and refusals are the socket's),
//! and its run's events are read back from the user's stored log by a
//! [`feed::RunFeed`] and turned into the adapter's events. Each SSE event
//! carries the run event's `seq` as its `id`, so `Last-Event-ID` resumes
//! exactly. A stream ends with its run, or when the run pauses for approval
//! (the client answers and continues with a new request).

pub mod agui;
pub mod feed;
pub mod step;
pub mod ui_message;

use std::collections::BTreeSet;
use std::convert::Infallible;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cordon_core::RunId;
use cordon_engine::{ApprovalError, NewMessage, ServiceError, WaitingCall};
use cordon_protocol::ServerFrame;
use tokio::sync::mpsc;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use feed::RunFeed;
use step::{Step, Steps};

/// SSE events buffered towards a slow client before the feed waits.
const OUTBOX: usize = 64;

/// The adapters' routes (under `/api`). Chat front ends are often served
/// from another origin: the `--allowed-origin` ones may call these
/// cross-origin (CORS, with the `Authorization` header; no cookies are used).
pub fn routes(allowed_origins: &[String]) -> Router<AppState> {
    let routes = Router::new()
        .route("/chat", post(ui_message::post_chat))
        .route("/chat/{id}/stream", get(ui_message::resume_chat))
        .route("/agui", post(agui::post_agui));
    if allowed_origins.is_empty() {
        return routes;
    }
    let origins = match allowed_origins.iter().any(|origin| origin == "*") {
        true => AllowOrigin::any(),
        false => AllowOrigin::list(
            allowed_origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        ),
    };
    let cors = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ]);
    routes.layer(cors)
}

/// Turns one run's events into one standard stream's events.
pub trait Adapter: Send + 'static {
    /// What a stream opens with.
    fn open(&mut self, out: &mut Outbox);
    /// The run's ids, with its first event.
    fn run(&mut self, run_id: &str, thread_id: &str, out: &mut Outbox);
    /// One step of the run (`seq`: of the event it came from); `true` when
    /// the stream ends after it.
    fn step(&mut self, seq: u64, step: &Step<'_>, out: &mut Outbox) -> bool;
    /// The run paused: every call it waits on has been announced.
    fn paused(&mut self, waiting: &[WaitingCall], out: &mut Outbox);
    /// The log could not be read; the stream ends after this.
    fn failed(&mut self, message: &str, out: &mut Outbox);
}

/// SSE events on their way out. Only the last event a run event turned
/// into carries its `seq` as `id`: a client's `Last-Event-ID` then means
/// "everything of that event arrived", even when the connection broke
/// between the events one run event became.
#[derive(Default)]
pub struct Outbox {
    events: Vec<(String, Option<u64>)>,
}

impl Outbox {
    /// One JSON event.
    pub fn json(&mut self, value: &serde_json::Value) {
        self.events.push((value.to_string(), None));
    }

    /// A raw `data:` line (e.g. `[DONE]`).
    pub fn raw(&mut self, data: &str) {
        self.events.push((data.to_owned(), None));
    }

    /// Marks the events pushed since `from` as those of `seq`.
    fn mark(&mut self, from: usize, seq: u64) {
        if self.events.len() > from
            && let Some(last) = self.events.last_mut()
        {
            last.1 = Some(seq);
        }
    }

    fn take(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.events.drain(..).map(|(data, seq)| {
            let event = Event::default().data(data);
            match seq {
                Some(seq) => event.id(seq.to_string()),
                None => event,
            }
        })
    }
}

/// Submits `message` for the user and streams its run through `adapter`.
/// A refusal is an HTTP error (status and JSON body), before any stream.
pub async fn stream_new_run(
    state: &AppState,
    user: &AuthUser,
    message: NewMessage,
    adapter: impl Adapter,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Subscribed before the message is sent: nothing of its run can pass unseen.
    let mut feed = RunFeed::open(state, user).await?;
    let accepted = state.runs.submit_message(&user.user_id, message).await?;
    feed.follow_run(accepted.run_id.clone(), accepted.seq.saturating_sub(1));
    Ok(respond(
        state,
        user,
        feed,
        accepted.run_id,
        adapter,
        headers,
    ))
}

/// Streams one of the user's runs after `after_seq` through `adapter`.
pub async fn stream_run(
    state: &AppState,
    user: &AuthUser,
    run_id: RunId,
    after_seq: u64,
    adapter: impl Adapter,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut feed = RunFeed::open(state, user).await?;
    feed.follow_run(run_id.clone(), after_seq);
    Ok(respond(state, user, feed, run_id, adapter, headers))
}

/// A person's answer to one call a paused run waits on, as a stream's
/// request carried it.
pub struct CallAnswer {
    pub call_id: String,
    pub approve: bool,
    pub reason: Option<String>,
}

/// Stores each answer (one sent again is ignored: the first stands), then
/// streams the run on from where it paused, its `approval_resolved` first.
pub async fn answer_and_continue(
    state: &AppState,
    user: &AuthUser,
    run_id: RunId,
    answers: Vec<CallAnswer>,
    adapter: impl Adapter,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let stored = state
        .store
        .list_run_events(&user.user_id, &run_id, 0)
        .await?;
    let cursor = stored.last().map_or(0, |event| event.seq);
    let raw_run = run_id.to_string();
    for answer in answers {
        let answered = state
            .runs
            .answer_approval(
                &user.user_id,
                Some(&raw_run),
                &answer.call_id,
                answer.approve,
                answer.reason,
            )
            .await;
        match answered {
            Ok(_) | Err(ServiceError::Approval(ApprovalError::AlreadyResolved)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    stream_run(state, user, run_id, cursor, adapter, headers).await
}

/// `RUN_ID:CALL_ID`, the id a stream gives a call that waits for approval.
pub fn approval_id(run_id: &str, call_id: &str) -> String {
    format!("{run_id}:{call_id}")
}

/// The run and call an approval id names.
pub fn parse_approval_id(id: &str) -> Option<(RunId, &str)> {
    let (run_id, call_id) = id.split_once(':')?;
    Some((RunId::parse(run_id).ok()?, call_id))
}

/// `Last-Event-ID` as a `seq`.
pub fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

fn respond(
    state: &AppState,
    user: &AuthUser,
    feed: RunFeed,
    run_id: RunId,
    adapter: impl Adapter,
    mut headers: HeaderMap,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Event>(OUTBOX);
    let driver = drive(state.clone(), user.clone(), feed, run_id, adapter, tx);
    tokio::spawn(state.sessions.track_future(driver));
    let events = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|event| event.map(Ok::<_, Infallible>))
    });
    headers.insert(
        HeaderName::from_static("cache-control"),
        HeaderValue::from_static("no-cache"),
    );
    headers.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    (headers, Sse::new(events).keep_alive(KeepAlive::default())).into_response()
}

/// Feeds the run's events through the adapter until the run ends, pauses,
/// the client goes away or the server drains.
async fn drive(
    state: AppState,
    user: AuthUser,
    mut feed: RunFeed,
    run_id: RunId,
    mut adapter: impl Adapter,
    tx: mpsc::Sender<Event>,
) {
    let mut out = Outbox::default();
    adapter.open(&mut out);
    let mut announced = BTreeSet::new();
    let mut steps = Steps::default();
    let mut started = false;
    loop {
        if !flush(&tx, &mut out).await {
            return;
        }
        // A client that went away frees its slot now, not at the run's next event.
        let next = tokio::select! {
            next = feed.next() => next,
            () = tx.closed() => return,
        };
        let batch = match next {
            Ok(batch) if batch.is_empty() => return,
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "could not read a run's events for a stream");
                adapter.failed("the run's events could not be read", &mut out);
                flush(&tx, &mut out).await;
                return;
            }
        };
        for event in &batch {
            let from = out.events.len();
            if let Some(envelope) = event.frame.envelope().filter(|_| !started) {
                adapter.run(&envelope.run_id, &envelope.thread_id, &mut out);
                started = true;
            }
            let ends = steps
                .of(&event.frame)
                .iter()
                .any(|step| adapter.step(event.seq, step, &mut out));
            out.mark(from, event.seq);
            if ends {
                flush(&tx, &mut out).await;
                return;
            }
            if let ServerFrame::ApprovalRequired { call_id, .. } = &event.frame {
                announced.insert(call_id.clone());
            }
        }
        if announced.is_empty() {
            continue;
        }
        // The pause is stored before its calls are announced, so once every
        // call it waits on was seen, nothing more comes until an answer.
        let waiting = state.runs.waiting_calls(&user.user_id, &run_id).await;
        if let Ok(waiting) = waiting
            && !waiting.is_empty()
            && waiting.iter().all(|call| announced.contains(&call.call_id))
        {
            adapter.paused(&waiting, &mut out);
            flush(&tx, &mut out).await;
            return;
        }
    }
}

/// Sends what is queued; `false` once the client went away.
async fn flush(tx: &mpsc::Sender<Event>, out: &mut Outbox) -> bool {
    for event in out.take() {
        if tx.send(event).await.is_err() {
            return false;
        }
    }
    true
}
