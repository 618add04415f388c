//! fooking's chat protocol (JSON over WebSocket text frames). Each file
//! is one client message type: it parses itself and applies itself.

mod close;
mod join;
mod leave;
mod login;
mod msg;
mod presence;
mod userlist;

use protocol::client::ClientError;
use protocol::RouterClient;
use protocol::SessionId;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::request::{Caller, Event};
use crate::users::Users;

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest message text, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// What the app holds: nothing per connection, only handles to shared state.
pub struct App {
    pub users: Users,
    /// Who talks on binary frames (the talk protocol), by session.
    pub talkers: Users,
    pub queue: crate::queue::Queue,
    pub router: RouterClient,
}

/// A reply body for the caller; `None` sends nothing back.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

impl Reply {
    pub fn none() -> Reply {
        Reply { status: 200, body: None }
    }

    pub fn json(body: Value) -> Reply {
        Reply { status: 200, body: Some(body) }
    }
}

/// An error the client sees as `{"type":"error","code":N,"message":..}`.
#[derive(Debug, PartialEq)]
pub struct ChatError {
    pub code: u16,
    pub message: String,
}

impl ChatError {
    pub fn new(code: u16, message: impl Into<String>) -> ChatError {
        ChatError { code, message: message.into() }
    }

    pub fn into_reply(self) -> Reply {
        Reply { status: self.code, body: Some(json!({"type": "error", "code": self.code, "message": self.message})) }
    }
}

impl From<ClientError> for ChatError {
    fn from(err: ClientError) -> Self {
        tracing::error!(%err, "router call failed");
        ChatError::new(503, "router unavailable")
    }
}

impl From<redis::RedisError> for ChatError {
    fn from(err: redis::RedisError) -> Self {
        tracing::error!(%err, "user store failed");
        ChatError::new(503, "user store unavailable")
    }
}

pub async fn handle(app: &App, caller: &Caller, body: &[u8]) -> Reply {
    let result = match caller.event {
        Event::Connect => Ok(Reply::none()),
        Event::Close => close::apply(app, caller.session).await,
        Event::Offline => presence::apply(app, caller.session, false).await,
        Event::Online => presence::apply(app, caller.session, true).await,
        Event::Message => handle_message(app, caller.session, body).await,
    };
    result.unwrap_or_else(ChatError::into_reply)
}

async fn handle_message(app: &App, session: SessionId, body: &[u8]) -> Result<Reply, ChatError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ChatError::new(400, format!("invalid JSON: {e}")))?;
    let kind = value.get("type").and_then(Value::as_str).ok_or_else(|| ChatError::new(400, "missing \"type\""))?;
    match kind {
        "login" => parse::<login::Login>(value)?.apply(app, session).await,
        "join" => parse::<join::Join>(value)?.apply(app, session).await,
        "leave" => parse::<leave::Leave>(value)?.apply(app, session).await,
        "msg" => parse::<msg::Msg>(value)?.apply(app, session).await,
        "userlist" => userlist::apply(app).await,
        other => Err(ChatError::new(404, format!("unknown message type {other:?}"))),
    }
}

fn parse<T: DeserializeOwned>(value: Value) -> Result<T, ChatError> {
    serde_json::from_value(value).map_err(|e| ChatError::new(400, e.to_string()))
}

/// HTML-escapes text that other clients will render.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A chat channel number, sent as a JSON number or a numeric string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelNumber(pub u32);

impl<'de> Deserialize<'de> for ChannelNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ChannelNumber(n)),
            Raw::Text(s) => s
                .trim()
                .parse()
                .map(ChannelNumber)
                .map_err(|_| serde::de::Error::custom("channel must be a non-negative number")),
        }
    }
}

impl ChannelNumber {
    /// The router channel behind chat channel K.
    pub fn router_channel(self) -> String {
        format!("chat-channel-{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<b>&</b>"), "&lt;b&gt;&amp;&lt;/b&gt;");
    }

    #[test]
    fn channel_numbers_accept_numbers_and_numeric_strings() {
        assert_eq!(serde_json::from_str::<ChannelNumber>("3").unwrap(), ChannelNumber(3));
        assert_eq!(serde_json::from_str::<ChannelNumber>("\"2\"").unwrap(), ChannelNumber(2));
        assert!(serde_json::from_str::<ChannelNumber>("\"x\"").is_err());
        assert!(serde_json::from_str::<ChannelNumber>("-1").is_err());
    }
}
