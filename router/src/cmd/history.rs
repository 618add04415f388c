use protocol::cmd::{Entry, History, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::presence::LIST_ENVELOPE;
use crate::store::StoreResult;

/// What the channel keeps, oldest first (after `since`, if given, saying
/// whether that offset is still kept): none unless `--history` names it.
/// An answer fits a frame: when the messages do not, it holds the oldest
/// that fit and says `more`, and the caller asks again `since` the last.
impl Apply for History {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let channel = self.channel.as_str();
        let Some(rule) = hub.history_rule(channel) else {
            return Ok(Reply::History { entries: Vec::new(), recovered: self.since.map(|_| false), more: false });
        };
        let limit = self.limit.unwrap_or(rule.count).min(rule.count);
        let (kept, recovered) = hub.store().history(channel, self.since.as_deref(), limit).await?;
        let room = hub.max_frame().saturating_sub(LIST_ENVELOPE);
        let (mut entries, mut bytes, mut more) = (Vec::new(), 0, false);
        for (offset, payload) in kept {
            let entry = Entry::new(offset, &payload);
            bytes += serde_json::to_vec(&entry).map_or(0, |json| json.len()) + 1;
            if bytes > room && !entries.is_empty() {
                more = true;
                break;
            }
            entries.push(entry);
        }
        Ok(Reply::History { entries, recovered, more })
    }
}
