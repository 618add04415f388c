use protocol::cmd::{Channels, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Channels {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        Ok(Reply::Channels { channels: hub.store().session_channels(&self.session).await? })
    }
}
