use bytes::Bytes;
use serde::Deserialize;

use super::{CommandError, Payload, Wire};
use crate::{Frame, FrameKind};

/// SEND_USER (101): a payload to every session of a user, on every
/// gateway. Laid out like CH_PUB: the user id in the session area.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SendUser {
    pub user: String,
    #[serde(flatten)]
    pub payload: Payload,
}

impl Wire for SendUser {
    const NAME: &'static str = "send_user";
    const KIND: FrameKind = FrameKind::SendUser;

    fn from_frame(frame: Frame) -> Result<SendUser, CommandError> {
        Ok(SendUser { user: super::user_id(&frame.sessions)?, payload: Payload::from_frame(&frame) })
    }

    fn to_frames(&self) -> Vec<Frame> {
        let user = Bytes::copy_from_slice(self.user.as_bytes());
        vec![Frame { binary: self.payload.binary, ..Frame::new(FrameKind::SendUser, user, self.payload.data.clone()) }]
    }

    fn payload(&self) -> Option<&Payload> {
        Some(&self.payload)
    }
}
