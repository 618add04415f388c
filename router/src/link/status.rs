//! STATUS and DESCRIBED: a gateway's report and one session's
//! description, for the operator's page.

use protocol::{GatewayStatus, SessionDescription, SessionId};

use crate::hub::{Hub, LinkId};
use crate::store::StoreResult;

pub(super) fn status(hub: &Hub, link: LinkId, status: GatewayStatus) -> StoreResult<()> {
    hub.gateway_status(link, status, std::time::Instant::now());
    super::done()
}

pub(super) fn described(
    hub: &Hub,
    link: LinkId,
    session: SessionId,
    description: SessionDescription,
) -> StoreResult<()> {
    hub.described(link, session, description);
    super::done()
}
