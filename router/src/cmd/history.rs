use protocol::cmd::{Entry, History, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

/// What the channel keeps, oldest first: none unless `--history` names it.
impl Apply for History {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let Some(rule) = hub.history_rule(self.channel.as_str()) else {
            return Ok(Reply::History { entries: Vec::new() });
        };
        let limit = self.limit.unwrap_or(rule.count).min(rule.count);
        let kept = hub.store().history_read(self.channel.as_str(), limit).await?;
        Ok(Reply::History { entries: kept.into_iter().map(|(offset, payload)| Entry::new(offset, &payload)).collect() })
    }
}
