//! Pusher clients send the gateway JSON text: any bytes must be read as a
//! message or refused with a reason, without a panic; an envelope that
//! parses round-trips, and so does a presence member's channel_data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::pusher::{ClientMessage, Envelope, PresenceMember};

fuzz_target!(|data: &[u8]| {
    let _ = ClientMessage::parse(data);
    if let Ok(envelope) = Envelope::parse(data) {
        assert_eq!(Envelope::parse(envelope.to_json().as_bytes()), Ok(envelope));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(member) = PresenceMember::parse(text) {
            assert!(!member.user_id.is_empty());
        }
    }
});
