//! SESSIONS_AWAY, SESSIONS_BACK: clients that dropped and are waited for
//! (offline in their presence channels), or came back.

use protocol::SessionId;

use crate::hub::{Hub, LinkId};
use crate::store::StoreResult;

pub(super) async fn apply(hub: &Hub, link: LinkId, sessions: &[SessionId], away: bool) -> StoreResult<()> {
    crate::presence::away(hub, link, sessions, away).await
}
