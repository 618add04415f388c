use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Channel, CommandError, Wire};
use crate::{Frame, FrameKind, SessionId};

/// Members listed at most by one call; the count is always whole.
pub const MAX_LISTED: usize = 10_000;

/// PRESENCE (120): a presence channel's members, with the user and info
/// each joined with and whether its client is connected, a page at a
/// time. The frame's session area is the channel, its data empty or the
/// JSON of `limit` and `cursor`; the binary reply's data is the JSON the
/// HTTP API answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Presence {
    pub channel: Channel,
    /// Members listed at most (1,000 unless given; at most [`MAX_LISTED`]).
    #[serde(default)]
    pub limit: Option<usize>,
    /// List those after this session id (the `next` of the page before).
    #[serde(default)]
    pub cursor: Option<SessionId>,
}

impl Presence {
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(1000).min(MAX_LISTED)
    }
}

/// One member of a presence channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub session: SessionId,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
    /// False while its client is away and the session waits for it.
    pub online: bool,
}

impl Wire for Presence {
    const NAME: &'static str = "presence";
    const KIND: FrameKind = FrameKind::Presence;
    const ANSWERED: bool = true;

    fn from_frame(frame: Frame) -> Result<Presence, CommandError> {
        let Page { limit, cursor } = super::frame_options(&frame.data)?;
        Ok(Presence { channel: Channel::from_bytes(&frame.sessions)?, limit, cursor })
    }

    fn to_frames(&self) -> Vec<Frame> {
        let page = Page { limit: self.limit, cursor: self.cursor };
        let channel = Bytes::copy_from_slice(self.channel.as_str().as_bytes());
        vec![Frame::new(FrameKind::Presence, channel, super::options_data(&page, page.limit.is_none() && page.cursor.is_none()))]
    }
}

/// What a PRESENCE frame's data says besides the channel.
#[derive(Default, Deserialize, Serialize)]
struct Page {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<SessionId>,
}
