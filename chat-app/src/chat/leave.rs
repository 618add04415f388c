use protocol::SessionId;
use serde::Deserialize;

use super::ChannelNumber;
use crate::app::{App, AppError};
use crate::cgi::Response;

/// `{"type":"leave","channel":K}`: leaves `chat-channel-K`; no reply.
#[derive(Deserialize)]
pub struct Leave {
    channel: ChannelNumber,
}

impl Leave {
    pub async fn apply(self, app: &App, session: SessionId) -> Result<Response, AppError> {
        app.router.leave(&self.channel.router_channel(), vec![session]).await?;
        Ok(Response::none())
    }
}
