//! What goes out to a client, whatever carries it. A push to many sessions
//! is one `Message`, cloned: the payload is shared, and so is its frame,
//! plain or compressed, made once by the first connection that needs it
//! (see `front::websocket::outgoing`) and written as it is to every other.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use protocol::SessionId;

use super::close::CloseReason;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Text(Payload),
    Binary(Payload),
    /// A keep-alive probe; a WebSocket client answers it.
    Ping,
    /// The end: a WebSocket client gets the code and reason.
    Close {
        code: u16,
        reason: Cow<'static, str>,
    },
    /// A resumable session's first message on each connection.
    Session(Box<Greeting>),
    /// The backend took the session (or had no connect event to refuse):
    /// an SSE stream's head goes out only now, so a client whose connect
    /// is refused gets the refusal, not a session. Nothing for the others.
    Accepted,
}

/// What a resumable session tells its client first: its id and the token
/// that resumes it. WebSocket and TCP clients get it as a text message
/// (`json`); an SSE client as its stream's session event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    pub id: SessionId,
    pub resume: String,
    pub resumed: bool,
    /// The number of the next message written: replayed first, then live.
    pub next_seq: u64,
}

impl Greeting {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"type": "session", "id": self.id.as_str(), "resume": self.resume, "resumed": self.resumed})
    }
}

impl Message {
    /// The close frame that tells a client why it is closed.
    pub fn closing(reason: CloseReason) -> Message {
        Message::Close { code: reason.code(), reason: reason.text().into() }
    }

    /// A payload as the client will see it: binary when the sender says so
    /// or it is not UTF-8, text otherwise.
    pub fn new(payload: Payload, binary: bool) -> Message {
        match binary || std::str::from_utf8(payload.data()).is_err() {
            true => Message::Binary(payload),
            false => Message::Text(payload),
        }
    }

    pub fn text(text: impl Into<String>) -> Message {
        Message::Text(Payload::new(Bytes::from(text.into())))
    }

    pub fn payload(&self) -> Option<&Payload> {
        match self {
            Message::Text(payload) | Message::Binary(payload) => Some(payload),
            _ => None,
        }
    }

    pub fn is_binary(&self) -> bool {
        matches!(self, Message::Binary(_))
    }

    /// The payload's size: what the queues' byte bounds count.
    pub fn len(&self) -> usize {
        self.payload().map_or(0, |payload| payload.data().len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A message's bytes. A message to many recipients holds them with the
/// cells its frames are made in once, in one allocation, so a copy for
/// each recipient costs one reference count.
#[derive(Clone, Debug)]
pub enum Payload {
    /// For one recipient.
    Own(Bytes),
    /// For many.
    Shared(Arc<Shared>),
}

/// A shared payload and its WebSocket frames: as it is, and compressed with
/// the largest window, which nearly every client takes.
#[derive(Debug)]
pub struct Shared {
    data: Bytes,
    plain: OnceLock<Bytes>,
    deflated: OnceLock<Bytes>,
    /// Sessions that keep it for a resume: its bytes are counted against
    /// the resume budget once, while there is any.
    keepers: AtomicU32,
}

impl Payload {
    /// For one recipient.
    pub fn new(data: Bytes) -> Payload {
        Payload::Own(data)
    }

    /// For many recipients: framed and compressed at most once, for all.
    pub fn shared(data: Bytes) -> Payload {
        Payload::Shared(Arc::new(Shared {
            data,
            plain: OnceLock::new(),
            deflated: OnceLock::new(),
            keepers: AtomicU32::new(0),
        }))
    }

    pub fn data(&self) -> &Bytes {
        match self {
            Payload::Own(data) => data,
            Payload::Shared(shared) => &shared.data,
        }
    }

    /// Kept by one more session for a resume: `charge` takes its bytes from
    /// a budget (false: no room, and it is not kept), for an own payload
    /// each time, for a shared one only as its first keeper; `refund` gives
    /// back a charge that lost a race to be first.
    pub fn keep(&self, charge: impl Fn(usize) -> bool, refund: impl Fn(usize)) -> bool {
        let shared = match self {
            Payload::Own(data) => return charge(data.len()),
            Payload::Shared(shared) => shared,
        };
        loop {
            let keepers = shared.keepers.load(Ordering::Acquire);
            if keepers > 0 {
                let counted =
                    shared.keepers.compare_exchange(keepers, keepers + 1, Ordering::AcqRel, Ordering::Acquire);
                if counted.is_ok() {
                    return true;
                }
                continue;
            }
            if !charge(shared.data.len()) {
                return false;
            }
            if shared.keepers.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return true;
            }
            refund(shared.data.len());
        }
    }

    /// No longer kept by one session: the bytes to give back to the budget
    /// (a shared payload's only when its last keeper lets go).
    pub fn release(&self) -> usize {
        match self {
            Payload::Own(data) => data.len(),
            Payload::Shared(shared) => match shared.keepers.fetch_sub(1, Ordering::AcqRel) {
                1 => shared.data.len(),
                _ => 0,
            },
        }
    }
}

impl Shared {
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Its frame, plain or compressed, made by the first connection that
    /// sends it.
    pub fn frame(&self, compressed: bool) -> &OnceLock<Bytes> {
        match compressed {
            false => &self.plain,
            true => &self.deflated,
        }
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.data() == other.data()
    }
}

impl Eq for Payload {}

impl From<&str> for Payload {
    fn from(text: &str) -> Payload {
        Payload::new(Bytes::copy_from_slice(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_only_when_asked_and_valid() {
        assert!(matches!(Message::new("héllo".into(), false), Message::Text(_)));
        assert!(matches!(Message::new("héllo".into(), true), Message::Binary(_)));
        assert!(Message::new(Payload::new(Bytes::from_static(b"\xff")), false).is_binary());
    }
}
