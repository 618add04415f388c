use bytes::Bytes;

use crate::{Frame, FrameKind};

/// INFO: counts of clients, channels and per-gateway load. The only
/// command fooking answers; the binary reply is [`InfoReport::to_text`].
///
/// [`InfoReport::to_text`]: crate::hub::InfoReport::to_text
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info;

impl Info {
    pub fn to_frame(&self) -> Frame {
        Frame::new(FrameKind::Info, Bytes::new(), Bytes::new())
    }
}
