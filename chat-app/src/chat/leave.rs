use protocol::SessionId;
use serde::Deserialize;

use super::{App, ChannelNumber, ChatError, Reply};

/// `{"type":"leave","channel":K}`: leaves `chat-channel-K`; no reply.
#[derive(Deserialize)]
pub struct Leave {
    channel: ChannelNumber,
}

impl Leave {
    pub async fn apply(self, app: &App, session: SessionId) -> Result<Reply, ChatError> {
        app.router.leave(&self.channel.router_channel(), vec![session]).await?;
        Ok(Reply::none())
    }
}
