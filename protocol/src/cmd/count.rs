use bytes::Bytes;
use serde::Deserialize;

use super::{Channel, CommandError, Wire};
use crate::{Frame, FrameKind};

/// COUNT (103): how many members a channel has, without listing them. The
/// binary reply's data is the number in decimal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Count {
    pub channel: Channel,
}

impl Wire for Count {
    const NAME: &'static str = "count";
    const KIND: FrameKind = FrameKind::Count;
    const ANSWERED: bool = true;

    fn from_frame(frame: Frame) -> Result<Count, CommandError> {
        Ok(Count { channel: Channel::from_bytes(&frame.sessions)? })
    }

    fn to_frames(&self) -> Vec<Frame> {
        vec![Frame::new(FrameKind::Count, Bytes::copy_from_slice(self.channel.as_str().as_bytes()), Bytes::new())]
    }
}
