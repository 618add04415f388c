use bytes::Bytes;
use serde::Deserialize;

use super::{Channel, CommandError, Reply};
use crate::hub::Hub;
use crate::protocol::{Frame, FrameKind};
use crate::store::StoreResult;

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

    pub(super) fn to_frame(&self) -> Frame {
        Frame::new(FrameKind::Members, Bytes::copy_from_slice(self.channel.as_str().as_bytes()), Bytes::new())
    }

    pub(super) async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let mut sessions = hub.store().members(self.channel.as_str()).await?;
        sessions.sort();
        Ok(Reply::Members { count: sessions.len(), sessions })
    }
}
