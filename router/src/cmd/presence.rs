use protocol::cmd::{Presence, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::presence;
use crate::store::StoreResult;

/// The members by session id: a whole count, and a list up to the limit.
impl Apply for Presence {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let (count, members) = presence::list(hub, self.channel.as_str(), self.limit()).await?;
        Ok(Reply::Presence { count, members })
    }
}
