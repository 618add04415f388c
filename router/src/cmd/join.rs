use std::collections::HashSet;
use std::time::{Duration, Instant};

use protocol::cmd::{Channel, Join, Reply};
use protocol::{FrameKind, KeptEnd, Offset, SessionId};

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

/// A join asking for history: KEPT_JOIN to the sessions the store adds
/// (their gateways hold their live messages of the channel), the kept
/// messages read once every gateway has applied it, then KEPT_END with the
/// offset they reached: the gateways pass on the held messages after it
/// and drop those before, whichever router published them.
impl Apply for Join {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let (channel, ids) = (self.target.channel.as_str(), &self.target.sessions);
        let rule = hub.history_rule(channel).filter(|_| self.history || self.since.is_some());
        if rule.is_some() && !runtime::until(hub.changes(), HELD_WAIT, || hub.all_held(ids)).await {
            tracing::warn!(channel, "joined sessions no gateway reported within {HELD_WAIT:?}: their history is lost");
        }
        let added = hub.store().join(channel, ids).await?;
        hub.note_unheld(ids, Instant::now());
        let recovered = match rule {
            Some(rule) => {
                let awaiting: HashSet<&SessionId> = added.iter().collect();
                let (waiting, others): (Vec<SessionId>, Vec<SessionId>) =
                    ids.iter().partition(|id| awaiting.contains(id));
                let mut sent = hub.joined(FrameKind::KeptJoin, channel, &waiting);
                sent.extend(hub.joined(FrameKind::ChAdd, channel, &others));
                until_applied(hub, channel, &sent).await;
                send_history(hub, channel, &added, rule, self.since.as_deref()).await?
            }
            None => {
                let sent = hub.joined(FrameKind::ChAdd, channel, ids);
                until_applied(hub, channel, &sent).await;
                false
            }
        };
        let who = Joining { user: self.user.as_deref(), info: self.info.as_ref() };
        presence::joined(hub, channel, ids, who).await?;
        Ok(match self.since {
            Some(_) => Reply::Recovered { sessions: added.len(), recovered },
            None => Reply::Changed { sessions: added.len() },
        })
    }
}

/// The channel's kept messages, oldest first (those after `since`, if
/// given), to sessions that just joined, and the KEPT_END that lets their
/// gateways pass on what they held; whether `since` is still kept. A read
/// that fails still ends their wait (they get the live messages held).
async fn send_history(hub: &Hub, channel: &str, ids: &[SessionId], rule: Rule, since: Option<&str>) -> StoreResult<bool> {
    if ids.is_empty() {
        return Ok(false);
    }
    let (kept, recovered, failed) = match hub.store().history(channel, since, rule.count).await {
        Ok((kept, recovered)) => (kept, recovered.unwrap_or(false), None),
        Err(err) => (Vec::new(), false, Some(err)),
    };
    let mut upto = since.and_then(Offset::parse).filter(|_| failed.is_none()).unwrap_or_default();
    for (offset, payload) in kept {
        upto = Offset::parse(&offset).unwrap_or(upto);
        let sent = as_sent(hub, channel, rule, offset, payload);
        let delivered = hub.deliver(FrameKind::SendMsg, ids, sent.data, sent.binary);
        hub.metrics.add(Count::HistorySent, delivered.sessions);
    }
    let end = KeptEnd { channel: Channel::new(channel).expect("a joined channel's name"), upto };
    hub.tell_gateways(FrameKind::KeptEnd, ids, end.to_data());
    match failed {
        Some(err) => Err(err),
        None => Ok(recovered),
    }
}

/// On a shared store, another router's publish may follow the answer at
/// once (for a join, the store names the gateways to it): the gateways
/// that hold the sessions apply the change first.
pub(super) async fn until_applied(hub: &Hub, channel: &str, sent: &[(LinkId, u64)]) {
    if hub.store().is_shared() && !runtime::until(hub.changes(), APPLIED_WAIT, || hub.all_applied(sent)).await {
        tracing::warn!(channel, "a gateway did not apply a membership change within {APPLIED_WAIT:?}");
    }
}
