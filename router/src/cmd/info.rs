use protocol::cmd::{Info, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Info {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        Ok(Reply::Info(hub.info().await?))
    }
}
