use protocol::cmd::{Leave, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::presence;
use crate::store::StoreResult;

impl Apply for Leave {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let (channel, ids) = (self.0.channel.as_str(), &self.0.sessions);
        let sessions = hub.store().leave(channel, ids).await?;
        let sent = hub.left(channel, ids);
        presence::left(hub, channel, ids, None).await?;
        super::join::until_applied(hub, channel, &sent).await;
        Ok(Reply::Changed { sessions })
    }
}
