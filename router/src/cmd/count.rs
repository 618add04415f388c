use protocol::cmd::{Count, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Count {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        Ok(Reply::Count { count: hub.store().count(self.channel.as_str()).await? })
    }
}
