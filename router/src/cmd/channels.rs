use bytes::Bytes;
use serde::Deserialize;

use super::{CommandError, Reply};
use crate::hub::Hub;
use crate::protocol::{Frame, FrameKind, SessionId};
use crate::store::StoreResult;

/// CHANNELS (104): the channels one session is in. The binary reply's
/// data is their names, one per line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Channels {
    pub session: SessionId,
}

impl Channels {
    pub(super) fn from_frame(frame: Frame) -> Result<Channels, CommandError> {
        Ok(Channels { session: SessionId::parse(&frame.sessions)? })
    }

    pub(super) fn to_frame(&self) -> Frame {
        Frame::new(FrameKind::Channels, Bytes::copy_from_slice(self.session.as_bytes()), Bytes::new())
    }

    pub(super) async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        Ok(Reply::Channels { channels: hub.store().session_channels(&self.session).await? })
    }
}
