//! Server-sent events: splits a byte stream into `event`/`data` frames (the WHATWG event-stream format).

use bytes::Bytes;
use cordon_core::LlmError;
use futures_util::{Stream, StreamExt};

/// Longest line accepted; a provider sending more without a newline is broken.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// Most `data` one event may carry, over all its lines.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// One dispatched event: its `event:` name (empty when none) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Incremental parser: feed bytes as they arrive, take the complete events.
/// Handles `\n`, `\r\n` and `\r` line ends, comments, multi-line data, and
/// lines (even UTF-8 characters) split across chunks.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    event: String,
    data: Option<String>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `chunk`; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, LlmError> {
        let mut events = Vec::new();
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line)? {
                        events.push(event);
                    }
                }
                _ => {
                    if self.line.len() >= MAX_LINE_BYTES {
                        return Err(LlmError::Malformed(
                            "an event-stream line is too long".into(),
                        ));
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(events)
    }

    /// The event still pending when the stream ends (a server that omits the final blank line).
    pub fn finish(&mut self) -> Result<Option<SseEvent>, LlmError> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.line_done(&line)?;
        }
        Ok(self.dispatch())
    }

    fn line_done(&mut self, line: &[u8]) -> Result<Option<SseEvent>, LlmError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| LlmError::Malformed("the event stream is not UTF-8".into()))?;
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => match &mut self.data {
                Some(data) if data.len() + 1 + value.len() > MAX_EVENT_BYTES => {
                    return Err(LlmError::Malformed(
                        "an event-stream event carries too much data".into(),
                    ));
                }
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        self.data.take().map(|data| SseEvent { event, data })
    }
}

/// Reads events from a response body, one at a time. Dropping it drops the body,
/// which closes the connection.
pub struct SseStream<S> {
    body: S,
    decoder: SseDecoder,
    ready: std::collections::VecDeque<SseEvent>,
    ended: bool,
}

impl<S, E> SseStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub fn new(body: S) -> Self {
        Self {
            body,
            decoder: SseDecoder::new(),
            ready: std::collections::VecDeque::new(),
            ended: false,
        }
    }

    /// The next event, `None` at the end of the body; waits at most `idle` for each chunk.
    pub async fn next_event(
        &mut self,
        idle: std::time::Duration,
    ) -> Result<Option<SseEvent>, LlmError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            match tokio::time::timeout(idle, self.body.next()).await {
                Err(_) => {
                    return Err(LlmError::Unavailable(format!(
                        "no data from the model for {} s",
                        idle.as_secs_f64()
                    )));
                }
                Ok(Some(Ok(chunk))) => self.ready.extend(self.decoder.push(&chunk)?),
                Ok(Some(Err(error))) => {
                    return Err(LlmError::Unavailable(format!(
                        "the response stream broke: {error}"
                    )));
                }
                Ok(None) => {
                    self.ended = true;
                    self.ready.extend(self.decoder.finish()?);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests panic on a broken assumption")]
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn parses_data_events_and_names() {
        let mut decoder = SseDecoder::new();
        let events = decoder
            .push(b"data: {\"a\":1}\n\nevent: message_stop\ndata: {}\n\n")
            .unwrap();
        assert_eq!(events, [ev("", "{\"a\":1}"), ev("message_stop", "{}")]);
    }

    #[test]
    fn events_split_anywhere_across_chunks_come_out_whole() {
        let stream = b"event: x\r\ndata: h\xC3\xA9llo\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut decoder = SseDecoder::new();
            let mut events = decoder.push(&stream[..cut]).unwrap();
            events.extend(decoder.push(&stream[cut..]).unwrap());
            assert_eq!(events, [ev("x", "héllo"), ev("", "[DONE]")], "cut at {cut}");
        }
    }

    #[test]
    fn comments_ignored_multiline_data_joined_cr_line_ends() {
        let mut decoder = SseDecoder::new();
        let events = decoder
            .push(b": keep-alive\rdata: one\rdata:two\r\rid: 7\nretry: 10\n\n")
            .unwrap();
        assert_eq!(events, [ev("", "one\ntwo")]);
    }

    #[test]
    fn a_trailing_event_without_blank_line_is_kept() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.push(b"data: last").unwrap().is_empty());
        assert_eq!(decoder.finish().unwrap(), Some(ev("", "last")));
    }

    #[test]
    fn invalid_utf8_is_a_clear_error() {
        let mut decoder = SseDecoder::new();
        let error = decoder.push(b"data: \xFF\xFE\n\n").unwrap_err();
        assert!(matches!(error, LlmError::Malformed(_)));
    }

    #[test]
    fn an_event_of_endless_short_data_lines_is_refused() {
        let mut decoder = SseDecoder::new();
        let line = format!("data: {}\n", "x".repeat(1023));
        let lines = line.repeat(MAX_EVENT_BYTES / 1024 + 2);
        let error = decoder.push(lines.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("too much data"), "{error}");
    }
}
