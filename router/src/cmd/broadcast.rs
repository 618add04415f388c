use bytes::Bytes;
use serde::Deserialize;

use super::{Payload, Reply};
use crate::hub::Hub;
use crate::protocol::{Frame, FrameKind};

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

    pub(super) fn to_frame(&self) -> Frame {
        Frame { binary: self.payload.binary, ..Frame::new(FrameKind::SendAll, Bytes::new(), self.payload.data.clone()) }
    }

    pub(super) async fn apply(self, hub: &Hub) -> Reply {
        Reply::Delivered(hub.broadcast(self.to_frame()))
    }
}
