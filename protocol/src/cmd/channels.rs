use bytes::Bytes;
use serde::Deserialize;

use super::CommandError;
use crate::{Frame, FrameKind, SessionId};

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

    pub fn to_frame(&self) -> Frame {
        Frame::new(FrameKind::Channels, Bytes::copy_from_slice(self.session.as_bytes()), Bytes::new())
    }
}
