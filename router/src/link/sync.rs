//! SYNC: answered SYNCED at once, since the link's frames are taken in
//! order: all the gateway sent before is applied (see `protocol::Sync`).

use protocol::{FrameKind, Sync};

use crate::hub::{Hub, LinkId};
use crate::store::StoreResult;

pub(super) fn apply(hub: &Hub, link: LinkId, barrier: Sync) -> StoreResult<()> {
    hub.send_to_link(link, barrier.to_frame(FrameKind::Synced));
    super::done()
}
