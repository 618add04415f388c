use bytes::Bytes;

use super::Reply;
use crate::hub::Hub;
use crate::protocol::{Frame, FrameKind};
use crate::store::StoreResult;

/// INFO: counts of clients, channels and per-gateway load. The only
/// command fooking answers; the binary reply is [`InfoReport::to_text`].
///
/// [`InfoReport::to_text`]: crate::hub::InfoReport::to_text
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info;

impl Info {
    pub(super) fn to_frame(&self) -> Frame {
        Frame::new(FrameKind::Info, Bytes::new(), Bytes::new())
    }

    pub(super) async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        Ok(Reply::Info(hub.info().await?))
    }
}
