use serde::Deserialize;

use super::{CommandError, Payload, Reply};
use crate::hub::Hub;
use crate::protocol::{Frame, FrameKind, SessionId};

/// SEND_MSG: a payload to the named sessions, wherever they are connected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Send {
    pub sessions: Vec<SessionId>,
    #[serde(flatten)]
    pub payload: Payload,
}

impl Send {
    pub(super) fn from_frame(frame: Frame) -> Result<Send, CommandError> {
        Ok(Send { sessions: frame.session_ids()?, payload: Payload::from_frame(&frame) })
    }

    pub(super) fn to_frames(&self) -> Vec<Frame> {
        let Payload { data, binary } = &self.payload;
        Frame::for_sessions(FrameKind::SendMsg, &self.sessions, data.clone(), *binary).collect()
    }

    pub(super) async fn apply(self, hub: &Hub) -> Reply {
        let Payload { data, binary } = self.payload;
        Reply::Delivered(hub.deliver(FrameKind::SendMsg, &self.sessions, data, binary))
    }
}
