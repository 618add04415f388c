use bytes::{Bytes, BytesMut};

use super::SessionId;

crate::wire_enum! {
    /// fooking's frame types. 1-12 are fooking's; new types start at 100 so
    /// they never collide with a future fooking release.
    pub enum FrameKind: u16 {
        Auth = 1,
        Conn = 2,
        Close = 3,
        Kick = 4,
        SendMsg = 5,
        SendAll = 6,
        ChAdd = 7,
        ChDel = 8,
        ChPub = 9,
        ChSub = 10,
        ChUnsub = 11,
        Info = 12,
        Bind = 100,
        SendUser = 101,
        Members = 102,
        Count = 103,
        Channels = 104,
        Online = 105,
        PublishExcept = 106,
        /// Router to gateway: report every session's memberships again.
        Resync = 107,
        /// Router to gateway: sessions of a dead gateway; send their close events.
        Orphaned = 108,
        /// A client asks to resume a session: its new gateway to a router, the
        /// router on to the gateway that holds it. See [`super::handover`].
        Resume = 109,
        /// The holding gateway to every router: route this session to the new
        /// gateway from now on.
        Moving = 110,
        /// A router to both gateways: it now routes the session to the new one.
        Moved = 111,
        /// The holding gateway, through a router, to the new one: the session's state.
        Handover = 112,
        /// To the new gateway: the session cannot be resumed.
        ResumeRefused = 113,
        /// Gateway and router, each way, every interval: the link is alive.
        /// See [`super::Heartbeat`].
        Heartbeat = 114,
        /// Router to a backend that asked for replies: the command was applied;
        /// data is its result as JSON.
        Ok = 115,
        /// Router to a backend that asked for replies: the command failed; data
        /// is `{"code":..,"message":..}`.
        Error = 116,
        /// Gateway to every router: these sessions' clients dropped, and
        /// the sessions wait for them to resume (offline in presence).
        SessionsAway = 117,
        /// Gateway to every router: these sessions' clients are back.
        SessionsBack = 118,
        /// Router to a gateway: a channel got its first member or lost its
        /// last; see [`super::Occupancy`].
        Occupancy = 119,
        /// A channel's presence members (answered, as JSON).
        Presence = 120,
        /// A channel's kept messages (answered, as JSON).
        History = 121,
        /// Gateway to every router, every heartbeat interval: how it is,
        /// for the operator's page; see [`super::GatewayStatus`].
        Status = 122,
        /// Router to a gateway, on the operator's word: drain, as on SIGTERM.
        Drain = 123,
        /// Router to the gateway that holds a session: describe it, for the
        /// operator's page.
        Describe = 124,
        /// That gateway's answer: see [`super::status::SessionDescription`].
        Described = 125,
        /// Gateway to router: answer once you have applied what I sent
        /// before; see [`super::Sync`].
        Sync = 126,
        /// Router to gateway: applied, up to that barrier.
        Synced = 127,
        /// Router to gateway: these sessions joined the channel and wait
        /// for its history (see [`super::KeptEnd`]); laid out as CH_ADD.
        KeptJoin = 128,
        /// Router to gateway: a kept message with its offset; see [`super::KeptPub`].
        KeptPub = 129,
        /// Router to gateway: the joining sessions' history ended here.
        KeptEnd = 130,
        /// Gateway to router: a session joined a presence channel as a
        /// member its client named; see [`super::MemberJoin`].
        MemberJoin = 131,
    }
}

/// The 16-bit `slen` holds at most 4095 ids of 16 bytes.
pub const MAX_IDS_PER_FRAME: usize = u16::MAX as usize / SessionId::LEN;

/// One frame: `u16 type`, `u16 slen`, `i32 len`, session area, data.
///
/// `binary` is the top bit of `len`, which fooking ignores: we use it to say
/// "deliver this payload as a binary WebSocket frame".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The type as the wire has it; [`Frame::kind`] reads it as a [`FrameKind`].
    pub raw_kind: u16,
    pub binary: bool,
    pub sessions: Bytes,
    pub data: Bytes,
}

impl Frame {
    pub fn new(kind: FrameKind, sessions: Bytes, data: Bytes) -> Frame {
        Frame { raw_kind: kind as u16, binary: false, sessions, data }
    }

    pub fn kind(&self) -> Option<FrameKind> {
        FrameKind::from_repr(self.raw_kind)
    }

    /// Frames of `kind`, each naming at most [`MAX_IDS_PER_FRAME`] of `ids`.
    pub fn for_sessions(
        kind: FrameKind,
        ids: &[SessionId],
        data: Bytes,
        binary: bool,
    ) -> impl Iterator<Item = Frame> + '_ {
        ids.chunks(MAX_IDS_PER_FRAME).map(move |chunk| Frame {
            raw_kind: kind as u16,
            binary,
            sessions: encode_ids(chunk),
            data: data.clone(),
        })
    }

    /// The session area read as a list of ids, checked whole first.
    pub fn session_ids(&self) -> Result<impl ExactSizeIterator<Item = SessionId> + '_, super::InvalidSessionId> {
        SessionId::packed(&self.sessions)
    }
}

pub fn encode_ids(ids: &[SessionId]) -> Bytes {
    let mut area = BytesMut::with_capacity(ids.len() * SessionId::LEN);
    for id in ids {
        area.extend_from_slice(id.as_bytes());
    }
    area.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_never_overflow_the_session_area() {
        let ids: Vec<_> = (0..10_000u64).map(SessionId::from_u64).collect();
        let frames: Vec<_> = Frame::for_sessions(FrameKind::SendMsg, &ids, Bytes::new(), false).collect();
        assert_eq!(frames.len(), 3);
        assert!(frames.iter().all(|f| f.sessions.len() <= u16::MAX as usize));
        let back: Vec<_> = frames.iter().flat_map(|f| f.session_ids().unwrap()).collect();
        assert_eq!(back, ids);
    }

    #[test]
    fn a_ragged_area_or_one_bad_id_refuses_the_whole_list() {
        let frame = Frame::new(FrameKind::Kick, Bytes::from_static(b"0123456789abcdef01"), Bytes::new());
        assert!(frame.session_ids().is_err());
        let last_bad =
            Frame::new(FrameKind::Kick, Bytes::from_static(b"0123456789abcdef0123456789abcdeX"), Bytes::new());
        assert!(last_bad.session_ids().is_err(), "no id is handed out before the last is checked");
        let good = Frame::new(FrameKind::Kick, Bytes::from_static(b"0123456789abcdef0000000000000001"), Bytes::new());
        assert_eq!(good.session_ids().unwrap().len(), 2);
    }
}
