use bytes::Bytes;
use serde::Deserialize;

use super::{CommandError, Payload, Wire};
use crate::{Frame, FrameKind};

/// SEND_ALL: a payload to every connected session on every gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Broadcast {
    #[serde(flatten)]
    pub payload: Payload,
}

impl Wire for Broadcast {
    const NAME: &'static str = "broadcast";
    const KIND: FrameKind = FrameKind::SendAll;

    fn from_frame(frame: Frame) -> Result<Broadcast, CommandError> {
        Ok(Broadcast { payload: Payload::from_frame(&frame) })
    }

    fn to_frames(&self) -> Vec<Frame> {
        vec![self.to_frame()]
    }

    fn payload(&self) -> Option<&Payload> {
        Some(&self.payload)
    }
}

impl Broadcast {
    pub fn to_frame(&self) -> Frame {
        Frame { binary: self.payload.binary, ..Frame::new(FrameKind::SendAll, Bytes::new(), self.payload.data.clone()) }
    }
}
