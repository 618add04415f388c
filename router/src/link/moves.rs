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

/// The holder routes the session to gateway `to` from now on.
pub(super) async fn moving(hub: &Hub, link: LinkId, session: SessionId, to: GatewayId) -> StoreResult<()> {
    hub.moving(link, session, to).await;
    super::done()
}

/// The holder's answer, passed on as it is.
pub(super) fn answer(hub: &Hub, link: LinkId, session: SessionId, frame: Frame) -> StoreResult<()> {
    hub.answer_resume(link, session, frame);
    super::done()
}
