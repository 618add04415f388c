use protocol::cmd::{Publish, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

/// One frame to each gateway that holds members; no member is read from
/// the store.
impl Apply for Publish {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let recent = hub.recent_routes(self.channel.as_str()).await;
        Ok(Reply::Delivered(hub.publish(self.channel.as_str(), self.to_frame(), &[], &recent)))
    }
}
