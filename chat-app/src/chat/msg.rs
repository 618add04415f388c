use std::time::{SystemTime, UNIX_EPOCH};

use protocol::cmd::Payload;
use protocol::SessionId;
use serde::Deserialize;
use serde_json::json;

use super::ChannelNumber;
use crate::app::{App, AppError};
use crate::cgi::Response;
use crate::text::{escape, MAX_TEXT_BYTES};

/// `{"type":"msg","text":T,"channel":K}`: to channel K's members, or to
/// everyone for K = 0. The sender gets it back like everyone else.
#[derive(Deserialize)]
pub struct Msg {
    text: String,
    #[serde(default = "everyone")]
    channel: ChannelNumber,
}

fn everyone() -> ChannelNumber {
    ChannelNumber(0)
}

impl Msg {
    pub async fn apply(self, app: &App, session: SessionId) -> Result<Response, AppError> {
        if self.text.len() > MAX_TEXT_BYTES {
            return Err(AppError::new(413, format!("a message is at most {MAX_TEXT_BYTES} bytes")));
        }
        let name = app.users.get(session).await?.ok_or_else(|| AppError::new(401, "log in first"))?;
        let message = json!({
            "type": "msg",
            "name": name,
            "channel": self.channel.0,
            "text": escape(&self.text),
            "time": utc_hh_mm(SystemTime::now()),
        });
        let payload = Payload::text(message.to_string());
        match self.channel {
            ChannelNumber(0) => app.router.broadcast(payload).await?,
            channel => app.router.publish(&channel.router_channel(), payload).await?,
        }
        Ok(Response::none())
    }
}

/// "HH:MM" in UTC: the protocol carries no zone, and the page may localise.
fn utc_hh_mm(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("{:02}:{:02}", secs / 3600 % 24, secs / 60 % 60)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_utc_hours_and_minutes() {
        let t = UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 13 * 3600 + 7 * 60 + 59);
        assert_eq!(utc_hh_mm(t), "13:07");
    }
}
