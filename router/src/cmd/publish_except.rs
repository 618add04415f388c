use protocol::cmd::{PublishExcept, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

/// Like a publish: each gateway leaves out the excepted sessions it holds.
impl Apply for PublishExcept {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let recent = hub.recent_routes(self.channel.as_str()).await;
        Ok(Reply::Delivered(hub.publish(self.channel.as_str(), self.to_frame(), &self.except, &recent)))
    }
}
