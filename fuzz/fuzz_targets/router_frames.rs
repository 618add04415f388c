//! Backends and gateways send the router frames: any bytes must decode,
//! and parse into session lists, commands, hand-over state, a resume, an AUTH or a heartbeat,
//! without a panic; what parses round-trips.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::cmd::Command;
use protocol::handover::{GatewayId, ResumeAsk, SessionState};
use protocol::{encode_ids, FrameCodec, Heartbeat, Hello};
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::new(1 << 16);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let mut encoded = BytesMut::new();
        codec.encode(frame.clone(), &mut encoded).unwrap();
        assert_eq!(codec.decode(&mut encoded).unwrap().as_ref(), Some(&frame));
        if let Ok((_, rest)) = GatewayId::split(&frame.data) {
            if let Ok(ask) = ResumeAsk::decode(&rest) {
                assert_eq!(ResumeAsk::decode(&ask.encode()), Ok(ask));
            }
            if let Ok(state) = SessionState::decode(rest) {
                assert_eq!(SessionState::decode(state.encode()), Ok(state));
            }
        }
        if let Ok(ids) = frame.session_ids() {
            assert_eq!(encode_ids(&ids.collect::<Vec<_>>()), frame.sessions);
        }
        if let Ok(hello) = Hello::from_frame(&frame) {
            assert_eq!(Hello::from_frame(&hello.to_frame()), Ok(hello));
        }
        if let Ok(beat) = Heartbeat::from_frame(&frame) {
            assert_eq!(Heartbeat::from_frame(&beat.to_frame()), Ok(beat));
        }
        if let Ok(command) = Command::from_frame(frame) {
            for frame in command.to_frames() {
                assert_eq!(Command::from_frame(frame).as_ref(), Ok(&command));
            }
        }
    }
});
