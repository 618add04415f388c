use bytes::Bytes;
use serde::Deserialize;

use super::{CommandError, Wire};
use crate::{Frame, FrameKind, SessionId};

/// KICK: disconnect the named sessions. Their close event still reaches
/// the backend, as for any other close.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Kick {
    pub sessions: Vec<SessionId>,
}

impl Wire for Kick {
    const NAME: &'static str = "kick";
    const KIND: FrameKind = FrameKind::Kick;

    fn from_frame(frame: Frame) -> Result<Kick, CommandError> {
        Ok(Kick { sessions: frame.session_ids()?.collect() })
    }

    fn to_frames(&self) -> Vec<Frame> {
        Frame::for_sessions(FrameKind::Kick, &self.sessions, Bytes::new(), false).collect()
    }
}
