use bytes::Bytes;
use protocol::cmd::{Kick, Reply};
use protocol::FrameKind;

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Kick {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        Ok(Reply::Delivered(hub.deliver(FrameKind::Kick, &self.sessions, Bytes::new(), false)))
    }
}
