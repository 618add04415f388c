//! BIND: a session's user, as a relink or a resync reports it; stored
//! again if the gateway holds the session.

use protocol::SessionId;

use crate::hub::{Hub, LinkId};
use crate::store::StoreResult;

pub(super) async fn apply(hub: &Hub, link: LinkId, session: SessionId, user: &str) -> StoreResult<()> {
    match hub.held_by(link, &[session]).is_empty() {
        true => Ok(()),
        false => hub.store().bind_user(&session, user).await,
    }
}
