//! CH_DEL: a client left a channel by itself (a Pusher unsubscribe); the
//! gateway has counted it already, the store and presence follow here.

use protocol::SessionId;

use crate::hub::{Hub, LinkId};
use crate::presence;
use crate::store::StoreResult;

pub(super) async fn apply(hub: &Hub, link: LinkId, sessions: &[SessionId], channel: &str) -> StoreResult<()> {
    let held = hub.held_by(link, sessions);
    hub.store().leave(channel, &held).await?;
    presence::left(hub, channel, &held, Some(link)).await
}
