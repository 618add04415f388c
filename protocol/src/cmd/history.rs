use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{offset, Channel, CommandError, Payload, Wire};
use crate::{Frame, FrameKind};

/// HISTORY (121): the messages a channel keeps (see the router's
/// `--history`), oldest first. The frame's session area is the channel,
/// its data empty or the JSON of `limit` and `since`; the binary reply's
/// data is the JSON the HTTP API answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct History {
    pub channel: Channel,
    /// The newest this many at most; all that are kept when not given.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only those after this offset.
    #[serde(default)]
    pub since: Option<String>,
}

/// A kept message: its offset in the channel and its payload, as a
/// publish gives it (`data`, or `data_base64` for binary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub offset: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
}

impl Entry {
    pub fn new(offset: String, payload: &Payload) -> Entry {
        let text = (!payload.binary).then(|| std::str::from_utf8(&payload.data).ok()).flatten();
        match text {
            Some(text) => Entry { offset, data: Some(text.to_owned()), data_base64: None },
            None => Entry {
                offset,
                data: None,
                data_base64: Some(base64::engine::general_purpose::STANDARD.encode(&payload.data)),
            },
        }
    }
}

/// What a HISTORY frame's data says besides the channel.
#[derive(Default, Deserialize, Serialize)]
struct Page {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
}

impl Wire for History {
    const NAME: &'static str = "history";
    const KIND: FrameKind = FrameKind::History;
    const ANSWERED: bool = true;

    fn from_frame(frame: Frame) -> Result<History, CommandError> {
        let Page { limit, since } = super::frame_options(&frame.data)?;
        if let Some(since) = &since {
            offset(since)?;
        }
        Ok(History { channel: Channel::from_bytes(&frame.sessions)?, limit, since })
    }

    fn from_json(body: &[u8]) -> Result<History, CommandError> {
        let history: History = serde_json::from_slice(body).map_err(|e| CommandError::Body(e.to_string()))?;
        if let Some(since) = &history.since {
            offset(since)?;
        }
        Ok(history)
    }

    fn to_frames(&self) -> Vec<Frame> {
        let page = Page { limit: self.limit, since: self.since.clone() };
        let channel = Bytes::copy_from_slice(self.channel.as_str().as_bytes());
        vec![Frame::new(FrameKind::History, channel, super::options_data(&page, page.limit.is_none() && page.since.is_none()))]
    }
}
