//! Backends and gateways send the router frames: any bytes must decode,
//! and parse into session lists, commands, hand-over state, a resume, an AUTH, a heartbeat, a channel interest,
//! a barrier, a kept message or a history's end, a member's join, an occupancy, a gateway's status or a session's description,
//! and as either side of a link reads them,
//! without a panic; what parses round-trips. The first frame is read as a
//! peer's before its AUTH: no larger than the bound, and nothing reserved past it.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::cmd::Command;
use protocol::handover::{GatewayId, ResumeAsk, SessionState};
use protocol::{
    encode_ids, Frame, FrameCodec, FrameKind, GatewayStatus, Heartbeat, Hello, Interest, KeptEnd, KeptPub, MemberJoin, Occupancy,
    SessionDescription, Sync, ToGateway, ToRouter, MAX_BEFORE_AUTH,
};
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::before_auth();
    let mut buf = BytesMut::from(data);
    let mut authenticated = false;
    loop {
        let decoded = codec.decode(&mut buf);
        if !authenticated {
            assert!(buf.capacity() <= 2 * (data.len() + 8 + MAX_BEFORE_AUTH), "reserved past the bound before AUTH");
        }
        let Ok(Some(frame)) = decoded else { break };
        if !authenticated {
            assert!(frame.sessions.len() + frame.data.len() <= MAX_BEFORE_AUTH);
            codec.authenticated(1 << 16);
            authenticated = true;
        }
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
        if let Ok(interest) = Interest::from_frame(&frame) {
            assert_eq!(Interest::from_frame(&interest.to_frame()), Ok(interest));
        }
        if let (Ok(sync), Some(kind)) = (Sync::from_frame(&frame), frame.kind()) {
            if matches!(kind, FrameKind::Sync | FrameKind::Synced) {
                assert_eq!(Sync::from_frame(&sync.to_frame(kind)), Ok(sync));
            }
        }
        if let Ok(kept) = KeptPub::from_frame(&frame) {
            assert_eq!(KeptPub::from_frame(&kept.to_frame()), Ok(kept));
        }
        if let Ok((ids, end)) = KeptEnd::from_frame(&frame) {
            let again = Frame::new(FrameKind::KeptEnd, encode_ids(&ids), end.to_data());
            assert_eq!(KeptEnd::from_frame(&again), Ok((ids, end)));
        }
        if let Ok(join) = MemberJoin::from_frame(&frame) {
            assert_eq!(MemberJoin::from_frame(&join.to_frame()), Ok(join));
        }
        if let Ok(occupancy) = Occupancy::from_frame(&frame) {
            assert_eq!(Occupancy::from_frame(&occupancy.to_frame()), Ok(occupancy));
        }
        if let Ok(status) = GatewayStatus::from_frame(&frame) {
            assert_eq!(GatewayStatus::from_frame(&status.to_frame()), Ok(status));
        }
        if let Ok((session, description)) = SessionDescription::from_frame(&frame) {
            assert_eq!(SessionDescription::from_frame(&description.to_frame(&session)), Ok((session, description)));
        }
        let _ = ToRouter::from_frame(frame.clone());
        let _ = ToGateway::from_frame(frame.clone());
        if let Ok(command) = Command::from_frame(frame) {
            for frame in command.to_frames() {
                assert_eq!(Command::from_frame(frame).as_ref(), Ok(&command));
            }
        }
    }
});
