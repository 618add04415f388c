use bytes::Bytes;

use super::{CommandError, Wire};
use crate::{Frame, FrameKind};

/// INFO: counts of clients, channels and per-gateway load. The only
/// command fooking answers; the binary reply is [`InfoReport::to_text`].
///
/// [`InfoReport::to_text`]: crate::hub::InfoReport::to_text
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Info;

impl Wire for Info {
    const NAME: &'static str = "info";
    const KIND: FrameKind = FrameKind::Info;
    const ANSWERED: bool = true;

    fn from_frame(_: Frame) -> Result<Info, CommandError> {
        Ok(Info)
    }

    /// Its body, if any, says nothing.
    fn from_json(_: &[u8]) -> Result<Info, CommandError> {
        Ok(Info)
    }

    fn to_frames(&self) -> Vec<Frame> {
        vec![Frame::new(FrameKind::Info, Bytes::new(), Bytes::new())]
    }
}
