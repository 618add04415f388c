//! What an SSE client sends is hostile: its first request head (read before
//! hyper, `front::sniff`) and its `Last-Event-ID` must parse without a
//! panic. What the gateway writes must come back
//! whole through a client's parser, whatever the message's bytes.
#![no_main]

use bytes::BytesMut;
use gateway::front::sse::codec::{self, EventId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((parts, len)) = gateway::front::sniff::event_stream_head(data) {
        assert!(len <= data.len(), "{parts:?}");
    }
    let Some((&flags, payload)) = data.split_first() else { return };
    if let Ok(text) = std::str::from_utf8(payload) {
        if let Some(id) = EventId::parse(text) {
            assert_eq!(EventId::parse(&format!("{}/{}", id.token, id.seq)), Some(id));
        }
        let _ = codec::parse(text);
    }
    let binary = flags & 1 == 1 || std::str::from_utf8(payload).is_err();
    let id = EventId { token: "00000000000000aa.0.ff".into(), seq: u64::from(flags) };
    let mut out = BytesMut::new();
    codec::ping(&mut out);
    codec::message(&mut out, payload, binary, (flags & 2 == 2).then_some(&id));
    let events = codec::parse(std::str::from_utf8(&out).expect("events are UTF-8"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message(), Some((payload.to_vec(), binary)));
});
