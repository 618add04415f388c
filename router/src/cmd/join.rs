use bytes::Bytes;
use serde::Deserialize;

use super::{ChannelSessions, CommandError, Reply};
use crate::hub::Hub;
use crate::protocol::{Frame, FrameKind};
use crate::store::StoreResult;

/// CH_ADD: put sessions in a channel, creating it if need be.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Join(pub ChannelSessions);

impl Join {
    pub(super) fn from_frame(frame: Frame) -> Result<Join, CommandError> {
        ChannelSessions::from_frame(&frame).map(Join)
    }

    pub(super) fn to_frames(&self) -> Vec<Frame> {
        self.0.to_frames(FrameKind::ChAdd)
    }

    pub(super) async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let sessions = hub.store().join(self.0.channel.as_str(), &self.0.sessions).await?;
        let channel = Bytes::copy_from_slice(self.0.channel.as_str().as_bytes());
        hub.tell_gateways(FrameKind::ChAdd, &self.0.sessions, channel);
        Ok(Reply::Changed { sessions })
    }
}
