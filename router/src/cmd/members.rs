use protocol::cmd::{Members, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Members {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let mut sessions = hub.store().members(self.channel.as_str()).await?;
        sessions.sort();
        Ok(Reply::Members { count: sessions.len(), sessions })
    }
}
