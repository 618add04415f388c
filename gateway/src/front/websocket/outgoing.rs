//! A message's WebSocket frame, ready to write: made once for all the
//! recipients of a shared payload, in the cells the payload keeps for it.

use std::sync::Arc;

use bytes::Bytes;

use super::deflate;
use super::frame::{server_frame, OpCode};
use crate::base::message::{Payload, Shared};

/// The whole WebSocket frame of a payload as `opcode` (a shared
/// payload is always sent as the same one), compressed (permessage-
/// deflate) with a window of `window_bits` when given: a frame of its
/// own, or a shared payload's, made once for all its recipients.
/// It takes the payload, so a shared one's count moves to the frame.
pub fn websocket_frame(payload: Payload, opcode: OpCode, window_bits: Option<u8>) -> Frame {
    let make = |data: &[u8]| match window_bits {
        Some(bits) => server_frame(opcode, true, &deflate::compress(data, bits)),
        None => server_frame(opcode, false, data),
    };
    match (payload, window_bits) {
        (Payload::Shared(shared), None) => {
            shared.frame(false).get_or_init(|| make(shared.data()));
            Frame::Shared { payload: shared, deflated: false }
        }
        (Payload::Shared(shared), Some(deflate::MAX_WINDOW_BITS)) => {
            shared.frame(true).get_or_init(|| make(shared.data()));
            Frame::Shared { payload: shared, deflated: true }
        }
        (payload, _) => Frame::Own(make(payload.data())),
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
            Frame::Shared { payload, deflated: false } => payload.frame(false).get().expect("made before queued"),
            Frame::Shared { payload, deflated: true } => payload.frame(true).get().expect("made before queued"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::message::Message;

    #[test]
    fn a_shared_payload_is_framed_and_compressed_once_for_every_clone() {
        let frame = |m: &Message, window| websocket_frame(m.payload().unwrap().clone(), OpCode::Text, window);
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
        assert_eq!(deflate::inflate(&first[2..], 2000).unwrap(), "x".repeat(1000).as_bytes());
        let plain = frame(&copies[0], None);
        assert_eq!((&plain[..2], plain.len()), (&[0x81, 126][..], 4 + 1000), "a final text frame, 16-bit length");
        let single = Message::new(Payload::from("y"), false);
        assert_ne!(frame(&single, None).as_ptr(), frame(&single, None).as_ptr(), "one recipient: nothing kept");
    }
}
