use bytes::Bytes;
use protocol::cmd::{Join, Reply};
use protocol::FrameKind;

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Join {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let sessions = hub.store().join(self.0.channel.as_str(), &self.0.sessions).await?;
        hub.note_unheld(&self.0.sessions);
        let channel = Bytes::copy_from_slice(self.0.channel.as_str().as_bytes());
        hub.tell_gateways(FrameKind::ChAdd, &self.0.sessions, channel);
        Ok(Reply::Changed { sessions })
    }
}
