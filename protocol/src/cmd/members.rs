use bytes::Bytes;
use serde::Deserialize;

use super::{Channel, CommandError, Wire};
use crate::{Frame, FrameKind};

/// MEMBERS (102): a channel's members. The binary reply's data is their
/// ids, concatenated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Members {
    pub channel: Channel,
}

impl Wire for Members {
    const NAME: &'static str = "members";
    const KIND: FrameKind = FrameKind::Members;
    const ANSWERED: bool = true;

    fn from_frame(frame: Frame) -> Result<Members, CommandError> {
        Ok(Members { channel: Channel::from_bytes(&frame.sessions)? })
    }

    fn to_frames(&self) -> Vec<Frame> {
        vec![Frame::new(FrameKind::Members, Bytes::copy_from_slice(self.channel.as_str().as_bytes()), Bytes::new())]
    }
}
