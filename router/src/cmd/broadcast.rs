use protocol::cmd::{Broadcast, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Broadcast {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        Ok(Reply::Delivered(hub.broadcast(self.to_frame())))
    }
}
