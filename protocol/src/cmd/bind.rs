use bytes::Bytes;
use serde::Deserialize;

use super::{CommandError, Wire};
use crate::{Frame, FrameKind, SessionId};

/// BIND (100): ties a session to a user id, so `send_user` reaches it. A
/// session has one user; binding it again moves it. The binding ends
/// with the session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Bind {
    pub session: SessionId,
    pub user: String,
}

impl Wire for Bind {
    const NAME: &'static str = "bind";
    const KIND: FrameKind = FrameKind::Bind;

    fn from_frame(frame: Frame) -> Result<Bind, CommandError> {
        let session = SessionId::parse(&frame.sessions)?;
        Ok(Bind { session, user: super::user_id(&frame.data)? })
    }

    fn to_frames(&self) -> Vec<Frame> {
        vec![self.to_frame()]
    }
}

impl Bind {
    pub fn to_frame(&self) -> Frame {
        let session = Bytes::copy_from_slice(self.session.as_bytes());
        Frame::new(FrameKind::Bind, session, Bytes::copy_from_slice(self.user.as_bytes()))
    }
}
