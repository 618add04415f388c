use bytes::Bytes;
use serde::Deserialize;

use super::Payload;
use crate::{Frame, FrameKind};

/// SEND_ALL: a payload to every connected session on every gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Broadcast {
    #[serde(flatten)]
    pub payload: Payload,
}

impl Broadcast {
    pub(super) fn from_frame(frame: Frame) -> Broadcast {
        Broadcast { payload: Payload::from_frame(&frame) }
    }

    pub fn to_frame(&self) -> Frame {
        Frame { binary: self.payload.binary, ..Frame::new(FrameKind::SendAll, Bytes::new(), self.payload.data.clone()) }
    }
}
