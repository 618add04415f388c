use bytes::Bytes;
use serde::Deserialize;

use super::{CommandError, Payload};
use crate::{Frame, FrameKind};

/// SEND_USER (101): a payload to every session of a user, on every
/// gateway. Laid out like CH_PUB: the user id in the session area.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SendUser {
    pub user: String,
    #[serde(flatten)]
    pub payload: Payload,
}

impl SendUser {
    pub(super) fn from_frame(frame: Frame) -> Result<SendUser, CommandError> {
        Ok(SendUser { user: super::user_id(&frame.sessions)?, payload: Payload::from_frame(&frame) })
    }

    pub fn to_frame(&self) -> Frame {
        let user = Bytes::copy_from_slice(self.user.as_bytes());
        Frame { binary: self.payload.binary, ..Frame::new(FrameKind::SendUser, user, self.payload.data.clone()) }
    }
}
