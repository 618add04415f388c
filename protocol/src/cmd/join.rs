use serde::Deserialize;

use super::{offset, user_id, ChannelSessions, CommandError, Wire};
use crate::{Frame, FrameKind};

/// The most bytes of a presence member's `info`, as compact JSON: it goes
/// out with every join and leave event of its channel.
pub const MAX_INFO_BYTES: usize = 2048;

/// CH_ADD: put sessions in a channel, creating it if need be. The JSON
/// form may say who they are to a presence channel's members (`user`,
/// `info`) and ask for the channel's kept messages (`history`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Join {
    #[serde(flatten)]
    pub target: ChannelSessions,
    /// On a presence channel: the user the members see (the session's
    /// bound user, or its id, when not given).
    #[serde(default)]
    pub user: Option<String>,
    /// On a presence channel: what the members see besides the user.
    #[serde(default)]
    pub info: Option<serde_json::Value>,
    /// Send each newly joined session the channel's kept messages before
    /// any live one.
    #[serde(default)]
    pub history: bool,
    /// Send only the kept messages after this offset (the last one a
    /// client saw), and say whether it is still kept: history implied.
    #[serde(default)]
    pub since: Option<String>,
}

impl Join {
    pub fn new(target: ChannelSessions) -> Join {
        Join { target, user: None, info: None, history: false, since: None }
    }
}

impl Wire for Join {
    const NAME: &'static str = "join";
    const KIND: FrameKind = FrameKind::ChAdd;

    fn from_frame(frame: Frame) -> Result<Join, CommandError> {
        ChannelSessions::from_frame(&frame).map(Join::new)
    }

    fn from_json(body: &[u8]) -> Result<Join, CommandError> {
        let join: Join = serde_json::from_slice(body).map_err(|e| CommandError::Body(e.to_string()))?;
        if let Some(user) = &join.user {
            user_id(user.as_bytes())?;
        }
        if let Some(since) = &join.since {
            offset(since)?;
        }
        if join.info.as_ref().is_some_and(|info| info.to_string().len() > MAX_INFO_BYTES) {
            return Err(CommandError::Body(format!("\"info\" is over {MAX_INFO_BYTES} bytes of JSON")));
        }
        Ok(join)
    }

    fn to_frames(&self) -> Vec<Frame> {
        self.target.to_frames(FrameKind::ChAdd)
    }
}
