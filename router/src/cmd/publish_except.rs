use protocol::cmd::Payload;
use protocol::cmd::{PublishExcept, Reply};
use protocol::FrameKind;

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for PublishExcept {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let mut members = hub.store().members(self.channel.as_str()).await?;
        members.retain(|id| !self.except.contains(id));
        let Payload { data, binary } = self.payload;
        Ok(Reply::Delivered(hub.deliver(FrameKind::SendMsg, &members, data, binary)))
    }
}
