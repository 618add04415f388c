use protocol::cmd::Payload;
use protocol::cmd::{Reply, SendUser};
use protocol::FrameKind;

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for SendUser {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let sessions = hub.store().user_sessions(&self.user).await?;
        let Payload { data, binary } = self.payload;
        Ok(Reply::Delivered(hub.deliver(FrameKind::SendMsg, &sessions, data, binary)))
    }
}
