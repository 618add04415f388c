use bytes::Bytes;
use serde::Deserialize;

use super::{CommandError, Wire};
use crate::{Frame, FrameKind, SessionId};

/// CHANNELS (104): the channels one session is in. The binary reply's
/// data is their names, one per line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Channels {
    pub session: SessionId,
}

impl Wire for Channels {
    const NAME: &'static str = "channels";
    const KIND: FrameKind = FrameKind::Channels;
    const ANSWERED: bool = true;

    fn from_frame(frame: Frame) -> Result<Channels, CommandError> {
        Ok(Channels { session: SessionId::parse(&frame.sessions)? })
    }

    fn to_frames(&self) -> Vec<Frame> {
        vec![Frame::new(FrameKind::Channels, Bytes::copy_from_slice(self.session.as_bytes()), Bytes::new())]
    }
}
