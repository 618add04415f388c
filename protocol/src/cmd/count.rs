use bytes::Bytes;
use serde::Deserialize;

use super::{Channel, CommandError};
use crate::{Frame, FrameKind};

/// COUNT (103): how many members a channel has, without listing them. The
/// binary reply's data is the number in decimal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Count {
    pub channel: Channel,
}

impl Count {
    pub(super) fn from_frame(frame: Frame) -> Result<Count, CommandError> {
        Ok(Count { channel: Channel::from_bytes(&frame.sessions)? })
    }

    pub fn to_frame(&self) -> Frame {
        Frame::new(FrameKind::Count, Bytes::copy_from_slice(self.channel.as_str().as_bytes()), Bytes::new())
    }
}
