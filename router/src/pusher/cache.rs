//! Pusher's cache channels (`cache-*`, `private-cache-*`,
//! `presence-cache-*`): each keeps its last event in fk's history (one
//! message, 30 minutes), and a client that joins gets it at once, or
//! `pusher:cache_miss` (and the app's webhook `cache_miss`) when there is
//! none. Sent to the sessions the store just added, so one router sends it.

use bytes::Bytes;
use serde_json::json;

use protocol::pusher;
use protocol::{FrameKind, SessionId};

use crate::hub::Hub;
use crate::store::StoreResult;

/// A client's join of fk channel `channel`, `added` the sessions new to it.
pub async fn joined(hub: &Hub, channel: &str, added: &[SessionId]) -> StoreResult<()> {
    let Some((_, pusher_channel)) = pusher::split_fk_channel(channel) else { return Ok(()) };
    let Some(rule) = hub.history_rule(channel).filter(|_| pusher::is_cache(pusher_channel) && !added.is_empty()) else {
        return Ok(());
    };
    let (kept, _) = hub.store().history(channel, None, rule.count).await?;
    match kept.into_iter().last() {
        Some((_, last)) => hub.deliver(FrameKind::SendMsg, added, last.data, last.binary),
        None => {
            hub.webhooks.channel_event(channel, "cache_miss", json!({}));
            hub.deliver(FrameKind::SendMsg, added, Bytes::from(pusher::cache_miss(pusher_channel)), false)
        }
    };
    Ok(())
}
