use protocol::cmd::Payload;
use protocol::cmd::{Publish, Reply};
use protocol::FrameKind;

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Publish {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let members = hub.store().members(self.channel.as_str()).await?;
        let Payload { data, binary } = self.payload;
        Ok(Reply::Delivered(hub.deliver(FrameKind::SendMsg, &members, data, binary)))
    }
}
