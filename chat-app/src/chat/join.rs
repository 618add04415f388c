use protocol::SessionId;
use serde::Deserialize;

use super::{App, ChannelNumber, ChatError, Reply};

/// `{"type":"join","channel":K}`: joins `chat-channel-K`; no reply.
#[derive(Deserialize)]
pub struct Join {
    channel: ChannelNumber,
}

impl Join {
    pub async fn apply(self, app: &App, session: SessionId) -> Result<Reply, ChatError> {
        app.router.join(&self.channel.router_channel(), vec![session]).await?;
        Ok(Reply::none())
    }
}
