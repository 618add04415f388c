use serde::Deserialize;

use super::{ChannelSessions, CommandError};
use crate::{Frame, FrameKind};

/// CH_DEL: take sessions out of a channel; an emptied channel disappears.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Leave(pub ChannelSessions);

impl Leave {
    pub(super) fn from_frame(frame: Frame) -> Result<Leave, CommandError> {
        ChannelSessions::from_frame(&frame).map(Leave)
    }

    pub fn to_frames(&self) -> Vec<Frame> {
        self.0.to_frames(FrameKind::ChDel)
    }
}
