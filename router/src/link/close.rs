//! CLOSE: sessions that ended. They leave their channels and presence,
//! and the gateway's lease no longer holds them.

use protocol::SessionId;

use crate::hub::{Hub, LinkId};
use crate::store::StoreResult;

pub(super) async fn apply(hub: &Hub, link: LinkId, sessions: &[SessionId]) -> StoreResult<()> {
    let ended = hub.sessions_closed(link, sessions);
    let closed = crate::presence::forget(hub, &ended, Some(link)).await;
    match hub.gateway_key(link) {
        Some(gateway) => closed.and(hub.store().gateway_sessions(&gateway, sessions, false).await),
        None => closed,
    }
}
