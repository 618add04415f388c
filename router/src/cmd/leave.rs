use bytes::Bytes;
use protocol::cmd::{Leave, Reply};
use protocol::FrameKind;

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Leave {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let sessions = hub.store().leave(self.0.channel.as_str(), &self.0.sessions).await?;
        let channel = Bytes::copy_from_slice(self.0.channel.as_str().as_bytes());
        hub.tell_gateways(FrameKind::ChDel, &self.0.sessions, channel);
        Ok(Reply::Changed { sessions })
    }
}
