use bytes::Bytes;
use serde::Deserialize;

use super::{CommandError, Reply};
use crate::hub::Hub;
use crate::protocol::{encode_ids, Frame, FrameKind, SessionId};
use crate::store::StoreResult;

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

impl Online {
    pub(super) fn from_frame(frame: Frame) -> Result<Online, CommandError> {
        Ok(Online { sessions: frame.session_ids()?, users: Vec::new() })
    }

    pub(super) fn to_frame(&self) -> Frame {
        Frame::new(FrameKind::Online, encode_ids(&self.sessions), Bytes::new())
    }

    pub(super) async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let sessions = hub.online(&self.sessions);
        let mut users = Vec::new();
        for user in self.users {
            if !hub.online(&hub.store().user_sessions(&user).await?).is_empty() {
                users.push(user);
            }
        }
        Ok(Reply::Online { sessions, users })
    }
}
