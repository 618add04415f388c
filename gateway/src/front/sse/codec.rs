//! The event stream's wire format (the WHATWG "server-sent events"): what
//! the gateway writes, and the event ids a client sends back to resume.
//!
//! A text message is its `data:` lines (a line each, split at LF). A text
//! with a CR in it, which an SSE parser would take for a line end, is sent
//! base64 as event `text64`, and a binary message as event `binary`:
//! nothing is lost or altered on the way. Heartbeats are comments.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{BufMut, BytesMut};

/// Where a resumable session's message stands: the resume token of the
/// connection that wrote it and its number. As an SSE `id`, it is what a
/// client's `Last-Event-ID` gives back to resume after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId {
    pub token: String,
    pub seq: u64,
}

impl EventId {
    /// `TOKEN/SEQ`, as the client sends it back.
    pub fn parse(text: &str) -> Option<EventId> {
        let (token, seq) = text.rsplit_once('/')?;
        Some(EventId { token: token.to_owned(), seq: seq.parse().ok()? })
    }
}

/// How long a browser's `EventSource` waits before it reconnects.
pub fn retry(out: &mut BytesMut, millis: u64) {
    out.put_slice(format!("retry: {millis}\n\n").as_bytes());
}

/// A keep-alive: a comment, which every client ignores.
pub fn ping(out: &mut BytesMut) {
    out.put_slice(b":\n\n");
}

/// A message from the backend or a push, numbered when resumable.
pub fn message(out: &mut BytesMut, payload: &[u8], binary: bool, id: Option<&EventId>) {
    let plain = !binary && !payload.contains(&b'\r');
    let event = match (plain, binary) {
        (true, _) => None,
        (false, true) => Some("binary"),
        (false, false) => Some("text64"),
    };
    event_id(out, id);
    match plain {
        true => event_lines(out, event, payload),
        false => event_lines(out, event, STANDARD.encode(payload).as_bytes()),
    }
}

/// A named event with its data (no CR in it: JSON the gateway made), and
/// an id where the client should stand if it comes back after it.
pub fn named(out: &mut BytesMut, event: &str, data: &str, id: Option<&EventId>) {
    event_id(out, id);
    event_lines(out, Some(event), data.as_bytes());
}

fn event_id(out: &mut BytesMut, id: Option<&EventId>) {
    if let Some(id) = id {
        out.put_slice(format!("id: {}/{}\n", id.token, id.seq).as_bytes());
    }
}

fn event_lines(out: &mut BytesMut, event: Option<&str>, data: &[u8]) {
    if let Some(event) = event {
        out.put_slice(format!("event: {event}\n").as_bytes());
    }
    for line in data.split(|b| *b == b'\n') {
        out.put_slice(b"data: ");
        out.put_slice(line);
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
}

/// An event as a client reads it, by the WHATWG parsing rules: for the
/// tests, the fuzz target and anyone checking a stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Parsed {
    /// The message it carries, as (bytes, binary); none for another event.
    pub fn message(&self) -> Option<(Vec<u8>, bool)> {
        match self.event.as_str() {
            "" | "message" => Some((self.data.clone().into_bytes(), false)),
            "text64" => Some((STANDARD.decode(&self.data).ok()?, false)),
            "binary" => Some((STANDARD.decode(&self.data).ok()?, true)),
            _ => None,
        }
    }
}

/// The events in `stream`, as a browser would dispatch them (comments and
/// `retry` left out; an unfinished last event too).
pub fn parse(stream: &str) -> Vec<Parsed> {
    let mut events = Vec::new();
    let mut event = Parsed::default();
    let mut data: Option<String> = None;
    for line in stream.split_inclusive(['\n', '\r']) {
        let Some(line) = line.strip_suffix(['\n', '\r']) else { break };
        if line.is_empty() {
            if let Some(data) = data.take() {
                events.push(Parsed { data, ..std::mem::take(&mut event) });
            }
            event.event.clear();
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event.event = value.to_owned(),
            "id" => event.id = Some(value.to_owned()),
            "data" => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(payload: &[u8], binary: bool) -> Parsed {
        let id = EventId { token: "00000000000000aa.1.ff".into(), seq: 7 };
        let mut out = BytesMut::new();
        ping(&mut out);
        message(&mut out, payload, binary, Some(&id));
        let events = parse(std::str::from_utf8(&out).unwrap());
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].message(), Some((payload.to_vec(), binary)));
        assert_eq!(EventId::parse(events[0].id.as_deref().unwrap()), Some(id));
        events[0].clone()
    }

    #[test]
    fn messages_round_trip_whatever_their_bytes() {
        assert_eq!(round_trip(b"hello", false).event, "");
        assert_eq!(round_trip(b"two\nlines\n", false).data, "two\nlines\n");
        assert_eq!(round_trip(b"", false).data, "");
        assert_eq!(round_trip(b"a\r\nb", false).event, "text64", "a CR would be read as a line end");
        assert_eq!(round_trip(b"\x00\xff", true).event, "binary");
        assert_eq!(round_trip(b": not a comment", false).data, ": not a comment");
        assert_eq!(round_trip("data: é".as_bytes(), false).data, "data: é");
    }

    #[test]
    fn named_events_and_ids() {
        let mut out = BytesMut::new();
        retry(&mut out, 2000);
        named(&mut out, "close", r#"{"code":4000}"#, None);
        let at = EventId { token: "T.1.ab".into(), seq: 0 };
        named(&mut out, "session", "{}", Some(&at));
        let events = parse(std::str::from_utf8(&out).unwrap());
        assert_eq!(events[0], Parsed { event: "close".into(), id: None, data: r#"{"code":4000}"#.into() });
        assert_eq!(events[1], Parsed { event: "session".into(), id: Some("T.1.ab/0".into()), data: "{}".into() });
        assert_eq!(events[0].message(), None);
        assert_eq!(EventId::parse("T.0.ab/12"), Some(EventId { token: "T.0.ab".into(), seq: 12 }));
        assert_eq!(EventId::parse("T.0.ab"), None);
        assert_eq!(EventId::parse("T/-1"), None);
    }
}
