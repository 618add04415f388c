//! What goes out to a client, whatever carries it. A push to many sessions
//! is one `Message`, cloned: the payload is shared, and so is its
//! WebSocket frame, plain or compressed, made once by the first connection
//! that needs it and written as it is to every other.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::base::close::CloseReason;

use super::websocket::deflate;
use super::websocket::frame::{server_frame, OpCode};

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

    /// The whole WebSocket frame of this payload as `opcode` (a shared
    /// payload is always sent as the same one), compressed (permessage-
    /// deflate) with a window of `window_bits` when given: a frame of its
    /// own, or a shared payload's, made once for all its recipients.
    /// It takes the payload, so a shared one's count moves to the frame.
    pub fn into_websocket_frame(self, opcode: OpCode, window_bits: Option<u8>) -> Frame {
        let make = |data: &[u8]| match window_bits {
            Some(bits) => server_frame(opcode, true, &deflate::compress(data, bits)),
            None => server_frame(opcode, false, data),
        };
        match (self, window_bits) {
            (Payload::Shared(shared), None) => {
                shared.plain.get_or_init(|| make(&shared.data));
                Frame::Shared { payload: shared, deflated: false }
            }
            (Payload::Shared(shared), Some(deflate::MAX_WINDOW_BITS)) => {
                shared.deflated.get_or_init(|| make(&shared.data));
                Frame::Shared { payload: shared, deflated: true }
            }
            (payload, _) => Frame::Own(make(payload.data())),
        }
    }
}

/// A frame ready to write: its own bytes, or a shared payload's frame,
/// read from the payload it was made in (no copy, no count of its own).
#[derive(Debug)]
pub enum Frame {
    Own(Bytes),
    Shared { payload: Arc<Shared>, deflated: bool },
}

impl std::ops::Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Frame::Own(bytes) => bytes,
            Frame::Shared { payload, deflated: false } => payload.plain.get().expect("made before queued"),
            Frame::Shared { payload, deflated: true } => payload.deflated.get().expect("made before queued"),
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

    #[test]
    fn a_shared_payload_is_framed_and_compressed_once_for_every_clone() {
        let frame = |m: &Message, window| m.payload().unwrap().clone().into_websocket_frame(OpCode::Text, window);
        let message = Message::new(Payload::shared(Bytes::from("x".repeat(1000))), false);
        let copies: Vec<Message> = (0..3).map(|_| message.clone()).collect();
        for window in [None, Some(deflate::MAX_WINDOW_BITS)] {
            let first = frame(&copies[0], window);
            for copy in &copies {
                let frame = frame(copy, window);
                assert_eq!(frame.as_ptr(), first.as_ptr(), "the same bytes, not a copy");
            }
        }
        let first = frame(&copies[0], Some(deflate::MAX_WINDOW_BITS));
        assert_eq!(super::super::websocket::deflate::inflate(&first[2..], 2000).unwrap(), "x".repeat(1000).as_bytes());
        let plain = frame(&copies[0], None);
        assert_eq!((&plain[..2], plain.len()), (&[0x81, 126][..], 4 + 1000), "a final text frame, 16-bit length");
        let single = Message::new(Payload::from("y"), false);
        assert_ne!(frame(&single, None).as_ptr(), frame(&single, None).as_ptr(), "one recipient: nothing kept");
    }
}
