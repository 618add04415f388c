use serde::Deserialize;

use super::{CommandError, Payload, Wire};
use crate::{Frame, FrameKind, SessionId};

/// SEND_MSG: a payload to the named sessions, wherever they are connected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SendMsg {
    pub sessions: Vec<SessionId>,
    #[serde(flatten)]
    pub payload: Payload,
}

impl Wire for SendMsg {
    const NAME: &'static str = "send";
    const KIND: FrameKind = FrameKind::SendMsg;

    fn from_frame(frame: Frame) -> Result<SendMsg, CommandError> {
        Ok(SendMsg { sessions: frame.session_ids()?.collect(), payload: Payload::from_frame(&frame) })
    }

    fn to_frames(&self) -> Vec<Frame> {
        let Payload { data, binary } = &self.payload;
        Frame::for_sessions(FrameKind::SendMsg, &self.sessions, data.clone(), *binary).collect()
    }

    fn payload(&self) -> Option<&Payload> {
        Some(&self.payload)
    }
}
