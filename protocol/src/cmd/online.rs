use bytes::Bytes;
use serde::Deserialize;

use super::{CommandError, Wire};
use crate::{encode_ids, Frame, FrameKind, SessionId};

/// ONLINE (105): which of some sessions, and which users, are connected
/// now. The binary form asks about sessions only; its reply's data is the
/// online ones' ids.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Online {
    #[serde(default)]
    pub sessions: Vec<SessionId>,
    #[serde(default)]
    pub users: Vec<String>,
}

impl Wire for Online {
    const NAME: &'static str = "online";
    const KIND: FrameKind = FrameKind::Online;
    const ANSWERED: bool = true;

    fn from_frame(frame: Frame) -> Result<Online, CommandError> {
        Ok(Online { sessions: frame.session_ids()?.collect(), users: Vec::new() })
    }

    fn to_frames(&self) -> Vec<Frame> {
        vec![Frame::new(FrameKind::Online, encode_ids(&self.sessions), Bytes::new())]
    }
}
