//! CH_ADD: sessions in a channel, as a relink or a resync reports them,
//! or a client joined by itself (fk's client subscribe, Pusher's);
//! those the gateway holds are stored again, with their presence; a
//! Pusher client's join of a cache channel gets its last event.

use protocol::SessionId;

use crate::hub::{Hub, LinkId};
use crate::presence::{self, Joining};
use crate::store::StoreResult;

pub(super) async fn apply(hub: &Hub, link: LinkId, sessions: &[SessionId], channel: &str) -> StoreResult<()> {
    let held = hub.held_by(link, sessions);
    let added = hub.store().join(channel, &held).await?;
    crate::pusher::cache::joined(hub, channel, &added).await?;
    presence::joined(hub, channel, &held, Joining { user: None, info: None }).await
}
