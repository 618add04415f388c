//! CONN: sessions that live on the gateway. The store learns which gateway
//! holds them (for its lease), and sessions a backend joined before this
//! came get their channels now.

use std::collections::HashMap;

use protocol::{FrameKind, SessionId};

use crate::hub::{Hub, LinkId};
use crate::store::StoreResult;

pub(super) async fn apply(hub: &Hub, link: LinkId, sessions: &[SessionId]) -> StoreResult<()> {
    let taken = hub.sessions_connected(link, sessions);
    let stored = match hub.gateway_key(link) {
        Some(gateway) => hub.store().gateway_sessions(&gateway, &taken, true).await,
        None => Ok(()),
    };
    stored.and(tell_late_joins(hub, &taken).await)
}

/// Sessions a backend joined before their gateway's CONN came: their
/// gateway learns their channels now, and their publishes go there.
async fn tell_late_joins(hub: &Hub, taken: &[SessionId]) -> StoreResult<()> {
    let late = hub.take_unheld(taken);
    if late.is_empty() {
        return Ok(());
    }
    let mut by_channel: HashMap<String, Vec<SessionId>> = HashMap::new();
    for (id, channels) in late.iter().zip(hub.store().sessions_channels(&late).await?) {
        channels.into_iter().for_each(|channel| by_channel.entry(channel).or_default().push(*id));
    }
    for (channel, ids) in by_channel {
        hub.joined(FrameKind::ChAdd, &channel, &ids);
    }
    Ok(())
}
