//! CH_SUB, CH_UNSUB: how many of a channel's members the gateway holds,
//! which routes the channel's publishes to it or no more.

use protocol::Interest;

use crate::hub::{Hub, LinkId};
use crate::store::StoreResult;

pub(super) fn apply(hub: &Hub, link: LinkId, interest: Interest) -> StoreResult<()> {
    hub.interest(link, interest);
    super::done()
}
