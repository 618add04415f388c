use protocol::cmd::{PublishExcept, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

/// Like a publish: each gateway leaves out the excepted sessions it holds.
impl Apply for PublishExcept {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let frame = self.to_frame();
        super::publish::publish_kept(hub, &self.channel, &self.except, &self.payload, frame).await
    }
}
