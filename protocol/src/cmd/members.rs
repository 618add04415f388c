use bytes::Bytes;
use serde::Deserialize;

use super::{Channel, CommandError};
use crate::{Frame, FrameKind};

/// MEMBERS (102): a channel's members. The binary reply's data is their
/// ids, concatenated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Members {
    pub channel: Channel,
}

impl Members {
    pub(super) fn from_frame(frame: Frame) -> Result<Members, CommandError> {
        Ok(Members { channel: Channel::from_bytes(&frame.sessions)? })
    }

    pub fn to_frame(&self) -> Frame {
        Frame::new(FrameKind::Members, Bytes::copy_from_slice(self.channel.as_str().as_bytes()), Bytes::new())
    }
}
