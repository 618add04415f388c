use protocol::cmd::Payload;
use protocol::cmd::{Reply, SendMsg};
use protocol::FrameKind;

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for SendMsg {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let Payload { data, binary } = self.payload;
        Ok(Reply::Delivered(hub.deliver(FrameKind::SendMsg, &self.sessions, data, binary)))
    }
}
