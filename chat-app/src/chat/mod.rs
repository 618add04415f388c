//! fooking's chat protocol (JSON over WebSocket text frames). Each file
//! is one client message type: it parses itself and applies itself.

mod close;
mod join;
mod leave;
mod login;
mod msg;
mod presence;
mod userlist;

use protocol::SessionId;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::{App, AppError};
use crate::cgi::Response;
use crate::request::{Caller, Event};

/// An error as a chat client sees it: `{"type":"error","code":N,"message":..}`.
pub fn error_response(err: AppError) -> Response {
    Response::status_json(err.code, json!({"type": "error", "code": err.code, "message": err.message}))
}

pub async fn handle(app: &App, caller: &Caller, body: &[u8]) -> Response {
    let result = match caller.event {
        Event::Connect => Ok(Response::none()),
        Event::Close => close::apply(app, caller.session).await,
        Event::Offline => presence::apply(app, caller.session, false).await,
        Event::Online => presence::apply(app, caller.session, true).await,
        Event::Message => handle_message(app, caller.session, body).await,
    };
    result.unwrap_or_else(error_response)
}

async fn handle_message(app: &App, session: SessionId, body: &[u8]) -> Result<Response, AppError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| AppError::new(400, format!("invalid JSON: {e}")))?;
    let kind = value.get("type").and_then(Value::as_str).ok_or_else(|| AppError::new(400, "missing \"type\""))?;
    match kind {
        "login" => parse::<login::Login>(value)?.apply(app, session).await,
        "join" => parse::<join::Join>(value)?.apply(app, session).await,
        "leave" => parse::<leave::Leave>(value)?.apply(app, session).await,
        "msg" => parse::<msg::Msg>(value)?.apply(app, session).await,
        "userlist" => userlist::apply(app).await,
        other => Err(AppError::new(404, format!("unknown message type {other:?}"))),
    }
}

fn parse<T: DeserializeOwned>(value: Value) -> Result<T, AppError> {
    serde_json::from_value(value).map_err(|e| AppError::new(400, e.to_string()))
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
    fn channel_numbers_accept_numbers_and_numeric_strings() {
        assert_eq!(serde_json::from_str::<ChannelNumber>("3").unwrap(), ChannelNumber(3));
        assert_eq!(serde_json::from_str::<ChannelNumber>("\"2\"").unwrap(), ChannelNumber(2));
        assert!(serde_json::from_str::<ChannelNumber>("\"x\"").is_err());
        assert!(serde_json::from_str::<ChannelNumber>("-1").is_err());
    }
}
