use serde::Deserialize;

use super::{ChannelSessions, CommandError, Wire};
use crate::{Frame, FrameKind};

/// CH_DEL: take sessions out of a channel; an emptied channel disappears.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Leave(pub ChannelSessions);

impl Wire for Leave {
    const NAME: &'static str = "leave";
    const KIND: FrameKind = FrameKind::ChDel;

    fn from_frame(frame: Frame) -> Result<Leave, CommandError> {
        ChannelSessions::from_frame(&frame).map(Leave)
    }

    fn to_frames(&self) -> Vec<Frame> {
        self.0.to_frames(FrameKind::ChDel)
    }
}
