use std::time::Duration;

use protocol::cmd::{Join, Reply};

use super::Apply;
use crate::hub::{Hub, LinkId};
use crate::store::StoreResult;

/// How long a join or leave on a shared store waits for the gateways to apply it.
const APPLIED_WAIT: Duration = Duration::from_secs(1);

impl Apply for Join {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let (channel, ids) = (self.0.channel.as_str(), &self.0.sessions);
        let sessions = hub.store().join(channel, ids, &hub.holders(ids)).await?;
        hub.note_unheld(ids);
        let sent = hub.joined(channel, ids);
        until_applied(hub, channel, &sent).await;
        Ok(Reply::Changed { sessions })
    }
}

/// On a shared store, another router's publish may follow the answer at
/// once (for a join, the store names the gateways to it): the gateways
/// that hold the sessions apply the change first.
pub(super) async fn until_applied(hub: &Hub, channel: &str, sent: &[(LinkId, u64)]) {
    if hub.store().is_shared() && !hub.until_applied(sent, APPLIED_WAIT).await {
        tracing::warn!(channel, "a gateway did not apply a membership change within {APPLIED_WAIT:?}");
    }
}
