//! CH_ADD: sessions in a channel, as a relink or a resync reports them;
//! those the gateway holds are stored again, with their presence.

use protocol::SessionId;

use crate::hub::{Hub, LinkId};
use crate::presence::{self, Joining};
use crate::store::StoreResult;

pub(super) async fn apply(hub: &Hub, link: LinkId, sessions: &[SessionId], channel: &str) -> StoreResult<()> {
    let held = hub.held_by(link, sessions);
    hub.store().join(channel, &held).await?;
    presence::joined(hub, channel, &held, Joining { user: None, info: None }).await
}
