use bytes::Bytes;
use serde::Deserialize;

use super::{ChannelSessions, CommandError, Reply};
use crate::hub::Hub;
use crate::protocol::{Frame, FrameKind};
use crate::store::StoreResult;

/// CH_DEL: take sessions out of a channel; an emptied channel disappears.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Leave(pub ChannelSessions);

impl Leave {
    pub(super) fn from_frame(frame: Frame) -> Result<Leave, CommandError> {
        ChannelSessions::from_frame(&frame).map(Leave)
    }

    pub(super) fn to_frames(&self) -> Vec<Frame> {
        self.0.to_frames(FrameKind::ChDel)
    }

    pub(super) async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let sessions = hub.store().leave(self.0.channel.as_str(), &self.0.sessions).await?;
        let channel = Bytes::copy_from_slice(self.0.channel.as_str().as_bytes());
        hub.tell_gateways(FrameKind::ChDel, &self.0.sessions, channel);
        Ok(Reply::Changed { sessions })
    }
}
