use protocol::SessionId;
use serde::Deserialize;

use super::ChannelNumber;
use crate::app::{App, AppError};
use crate::cgi::Response;

/// `{"type":"join","channel":K}`: joins `chat-channel-K`; no reply.
#[derive(Deserialize)]
pub struct Join {
    channel: ChannelNumber,
}

impl Join {
    pub async fn apply(self, app: &App, session: SessionId) -> Result<Response, AppError> {
        app.router.join(&self.channel.router_channel(), vec![session]).await?;
        Ok(Response::none())
    }
}
