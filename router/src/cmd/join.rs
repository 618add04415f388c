use std::time::Duration;

use protocol::cmd::{Join, Reply};
use protocol::{FrameKind, SessionId};

use super::Apply;
use crate::hub::{Hub, LinkId};
use crate::metrics::Count;
use super::publish::as_sent;
use crate::presence::{self, Joining};
use crate::store::history::Rule;
use crate::store::StoreResult;

/// How long a join or leave on a shared store waits for the gateways to apply it.
const APPLIED_WAIT: Duration = Duration::from_secs(1);

/// How long a join asking for history waits for its sessions' gateway to
/// report them: a backend may join a session the moment its connect event
/// comes, before the router has heard of it, and its history has nowhere
/// to go until then.
const HELD_WAIT: Duration = Duration::from_secs(2);

/// A join asking for history holds the channel's seam from the store's
/// join until the kept messages are queued after CH_ADD: a publish through
/// this router then comes wholly before (kept, sent now) or after (live).
impl Apply for Join {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let (channel, ids) = (self.target.channel.as_str(), &self.target.sessions);
        let rule = hub.history_rule(channel).filter(|_| self.history || self.since.is_some());
        if rule.is_some() && !hub.until_held(ids, HELD_WAIT).await {
            tracing::warn!(channel, "joined sessions no gateway reported within {HELD_WAIT:?}: their history is lost");
        }
        let seam = match rule {
            Some(_) => Some(hub.seam(channel).await),
            None => None,
        };
        let added = hub.store().join(channel, ids).await?;
        hub.note_unheld(ids);
        let sent = hub.joined(channel, ids);
        let recovered = match rule {
            Some(rule) => send_history(hub, channel, &added, rule, self.since.as_deref()).await?,
            None => false,
        };
        drop(seam);
        let who = Joining { user: self.user.as_deref(), info: self.info.as_ref() };
        presence::joined(hub, channel, ids, who).await?;
        until_applied(hub, channel, &sent).await;
        Ok(match self.since {
            Some(_) => Reply::Recovered { sessions: added.len(), recovered },
            None => Reply::Changed { sessions: added.len() },
        })
    }
}

/// The channel's kept messages, oldest first (those after `since`, if
/// given), to sessions that just joined; whether `since` is still kept.
async fn send_history(hub: &Hub, channel: &str, ids: &[SessionId], rule: Rule, since: Option<&str>) -> StoreResult<bool> {
    if ids.is_empty() {
        return Ok(false);
    }
    let (kept, recovered) = hub.store().history(channel, since, rule.count).await?;
    for (offset, payload) in kept {
        let sent = as_sent(hub, channel, rule, offset, payload);
        let delivered = hub.deliver(FrameKind::SendMsg, ids, sent.data, sent.binary);
        hub.metrics.add(Count::HistorySent, delivered.sessions);
    }
    Ok(recovered.unwrap_or(false))
}

/// On a shared store, another router's publish may follow the answer at
/// once (for a join, the store names the gateways to it): the gateways
/// that hold the sessions apply the change first.
pub(super) async fn until_applied(hub: &Hub, channel: &str, sent: &[(LinkId, u64)]) {
    if hub.store().is_shared() && !hub.until_applied(sent, APPLIED_WAIT).await {
        tracing::warn!(channel, "a gateway did not apply a membership change within {APPLIED_WAIT:?}");
    }
}
