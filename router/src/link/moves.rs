//! RESUME, MOVING, HANDOVER and RESUME_REFUSED: a session moving from the
//! gateway that holds it to the one its client resumed on (see
//! `protocol::handover` and the hub's `moves`).

use protocol::handover::{GatewayId, ResumeAsk};
use protocol::{Frame, SessionId};

use crate::hub::{Hub, LinkId};
use crate::store::StoreResult;

/// A client asks the gateway on `link` for a session another holds.
pub(super) fn resume(hub: &Hub, link: LinkId, session: SessionId, ask: &ResumeAsk) -> StoreResult<()> {
    hub.resume(link, session, ask);
    super::done()
}

/// The holder routes the session to gateway `to` from now on; the store
/// hears which gateway holds it now.
pub(super) async fn moving(hub: &Hub, link: LinkId, session: SessionId, to: GatewayId) -> StoreResult<()> {
    let channels = match hub.store().session_channels(&session).await {
        Ok(channels) => channels,
        Err(err) => {
            tracing::error!(%err, %session, "a moving session's channels are unknown: the new gateway learns them from the hand-over");
            Vec::new()
        }
    };
    if !hub.moving(link, session, to, &channels) {
        return Ok(());
    }
    let Some(old) = hub.gateway_key(link) else { return Ok(()) };
    hub.store().gateway_sessions(&old, &[session], false).await?;
    hub.store().gateway_sessions(&to.to_string(), &[session], true).await
}

/// The holder's answer, passed on as it is.
pub(super) fn answer(hub: &Hub, link: LinkId, session: SessionId, frame: Frame) -> StoreResult<()> {
    hub.answer_resume(link, session, frame);
    super::done()
}
