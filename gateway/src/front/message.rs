//! What goes out to a client, whatever carries it. A push to many sessions
//! is one `Message`, cloned: the payload is shared, and so is its
//! compressed form, made once by the first connection that needs it.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::websocket::deflate;

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
}

impl Message {
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

/// A message's bytes, and for a message to many recipients the cell its
/// compressed form is made in once.
#[derive(Clone, Debug)]
pub struct Payload {
    data: Bytes,
    deflated: Option<Arc<OnceLock<Bytes>>>,
}

impl Payload {
    /// For one recipient.
    pub fn new(data: Bytes) -> Payload {
        Payload { data, deflated: None }
    }

    /// For many recipients: compressed at most once, for all of them.
    pub fn shared(data: Bytes) -> Payload {
        Payload { data, deflated: Some(Arc::default()) }
    }

    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The payload compressed (permessage-deflate) with a window of
    /// `window_bits`; shared with the largest window, which nearly every
    /// client takes.
    pub fn deflated(&self, window_bits: u8) -> Bytes {
        match &self.deflated {
            Some(cell) if window_bits == deflate::MAX_WINDOW_BITS => {
                cell.get_or_init(|| deflate::compress(&self.data, window_bits)).clone()
            }
            _ => deflate::compress(&self.data, window_bits),
        }
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.data == other.data
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

    #[test]
    fn a_shared_payload_is_compressed_once_for_every_clone() {
        let message = Message::new(Payload::shared(Bytes::from("x".repeat(1000))), false);
        let copies: Vec<Message> = (0..3).map(|_| message.clone()).collect();
        let first = copies[0].payload().unwrap().deflated(15);
        for copy in &copies {
            assert_eq!(copy.payload().unwrap().deflated(15).as_ptr(), first.as_ptr(), "the same bytes, not a copy");
        }
        let single = Payload::from("y");
        assert_ne!(single.deflated(15).as_ptr(), single.deflated(15).as_ptr(), "one recipient: nothing kept");
    }
}
