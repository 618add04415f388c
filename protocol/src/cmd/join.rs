use serde::Deserialize;

use super::{ChannelSessions, CommandError, Wire};
use crate::{Frame, FrameKind};

/// CH_ADD: put sessions in a channel, creating it if need be.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Join(pub ChannelSessions);

impl Wire for Join {
    const NAME: &'static str = "join";
    const KIND: FrameKind = FrameKind::ChAdd;

    fn from_frame(frame: Frame) -> Result<Join, CommandError> {
        ChannelSessions::from_frame(&frame).map(Join)
    }

    fn to_frames(&self) -> Vec<Frame> {
        self.0.to_frames(FrameKind::ChAdd)
    }
}
