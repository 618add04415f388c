use bytes::Bytes;
use serde::Deserialize;

use super::{Channel, CommandError, Payload, Wire};
use crate::{Frame, FrameKind};

/// CH_PUB: a payload to every member of a channel. Unlike CH_ADD/CH_DEL,
/// fooking puts the channel name in the session area.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Publish {
    pub channel: Channel,
    #[serde(flatten)]
    pub payload: Payload,
}

impl Wire for Publish {
    const NAME: &'static str = "publish";
    const KIND: FrameKind = FrameKind::ChPub;

    fn from_frame(frame: Frame) -> Result<Publish, CommandError> {
        Ok(Publish { channel: Channel::from_bytes(&frame.sessions)?, payload: Payload::from_frame(&frame) })
    }

    fn to_frames(&self) -> Vec<Frame> {
        vec![self.to_frame()]
    }

    fn payload(&self) -> Option<&Payload> {
        Some(&self.payload)
    }
}

impl Publish {
    pub fn to_frame(&self) -> Frame {
        let channel = Bytes::copy_from_slice(self.channel.as_str().as_bytes());
        Frame { binary: self.payload.binary, ..Frame::new(FrameKind::ChPub, channel, self.payload.data.clone()) }
    }
}
