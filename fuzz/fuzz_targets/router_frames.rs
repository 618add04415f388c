//! Backends and gateways send the router frames: any bytes must decode,
//! and parse into commands or hand-over state, without a panic; valid
//! commands and states round-trip.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use router::cmd::Command;
use router::protocol::handover::{GatewayId, SessionState};
use router::protocol::FrameCodec;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::new(1 << 16);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let mut encoded = BytesMut::new();
        codec.encode(frame.clone(), &mut encoded).unwrap();
        assert_eq!(codec.decode(&mut encoded).unwrap().as_ref(), Some(&frame));
        if let Ok((_, rest)) = GatewayId::split(&frame.data) {
            if let Ok(state) = SessionState::decode(rest) {
                assert_eq!(SessionState::decode(state.encode()), Ok(state));
            }
        }
        if let Ok(command) = Command::from_frame(frame) {
            for frame in command.to_frames() {
                assert_eq!(Command::from_frame(frame).as_ref(), Ok(&command));
            }
        }
    }
});
