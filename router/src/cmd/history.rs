use protocol::cmd::{Entry, History, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

/// What the channel keeps, oldest first (after `since`, if given, saying
/// whether that offset is still kept): none unless `--history` names it.
impl Apply for History {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let channel = self.channel.as_str();
        let Some(rule) = hub.history_rule(channel) else {
            return Ok(Reply::History { entries: Vec::new(), recovered: self.since.map(|_| false) });
        };
        let limit = self.limit.unwrap_or(rule.count).min(rule.count);
        let (kept, recovered) = hub.store().history(channel, self.since.as_deref(), limit).await?;
        let entries = kept.into_iter().map(|(offset, payload)| Entry::new(offset, &payload)).collect();
        Ok(Reply::History { entries, recovered })
    }
}
