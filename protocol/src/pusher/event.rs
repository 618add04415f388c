//! Pusher's messages on the client's connection: every one is JSON
//! `{"event":E,"channel":C,"data":D}` ([`Envelope`]). What a client sends
//! is read once into a [`ClientMessage`]; what the server sends is built
//! here, once per event (a publish's envelope is shared by its members).

use serde_json::{json, Map, Value};

/// One message, either way. `data` is a JSON string in most of what a
/// server sends (pusher-js parses it again) and any JSON in a client's.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    pub event: String,
    pub channel: Option<String>,
    pub data: Value,
    /// A client event on a presence channel carries its sender's user.
    pub user_id: Option<String>,
}

/// The most of a client's message read: Pusher's own limit on an event.
pub const MAX_CLIENT_MESSAGE: usize = 10 << 10;

impl Envelope {
    pub fn new(event: impl Into<String>, channel: Option<&str>, data: Value) -> Envelope {
        Envelope { event: event.into(), channel: channel.map(str::to_owned), data, user_id: None }
    }

    /// Reads a message; says what is wrong with one that is not one.
    pub fn parse(text: &[u8]) -> Result<Envelope, &'static str> {
        let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(text) else {
            return Err("a message is a JSON object");
        };
        let Some(Value::String(event)) = message.remove("event") else {
            return Err("a message names its event");
        };
        let channel = match message.remove("channel") {
            None | Some(Value::Null) => None,
            Some(Value::String(channel)) => Some(channel),
            Some(_) => return Err("a channel is a string"),
        };
        let user_id = match message.remove("user_id") {
            Some(Value::String(user)) => Some(user),
            _ => None,
        };
        Ok(Envelope { event, channel, data: message.remove("data").unwrap_or(Value::Null), user_id })
    }

    pub fn to_json(&self) -> String {
        let mut message = Map::new();
        message.insert("event".into(), Value::String(self.event.clone()));
        if let Some(channel) = &self.channel {
            message.insert("channel".into(), Value::String(channel.clone()));
        }
        message.insert("data".into(), self.data.clone());
        if let Some(user) = &self.user_id {
            message.insert("user_id".into(), Value::String(user.clone()));
        }
        Value::Object(message).to_string()
    }

    /// `data` as an object, whether sent as one or as a JSON string.
    fn data_object(&self) -> Option<Map<String, Value>> {
        match &self.data {
            Value::Object(data) => Some(data.clone()),
            Value::String(text) => match serde_json::from_str(text) {
                Ok(Value::Object(data)) => Some(data),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A user's id as a client's signed JSON names it: a string, or a number
/// taken as its decimal string; 1 to 256 bytes, as any user of fk's.
pub fn user_id(value: Option<&Value>) -> Option<String> {
    let id = match value? {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    (!id.is_empty() && id.len() <= crate::cmd::MAX_USER_LEN).then_some(id)
}

/// An event's data as clients get it, and webhooks carry it: a string as
/// it is (the SDKs send JSON as a string), anything else as its JSON.
pub fn data_text(data: &Value) -> String {
    match data {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A client's ask to join a channel, with the signature its backend gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    pub channel: String,
    pub auth: Option<String>,
    /// A presence channel's member, as signed: `{"user_id":..,"user_info":..}`.
    pub channel_data: Option<String>,
}

/// What a client may send.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientMessage {
    Ping,
    Pong,
    Subscribe(Subscribe),
    Unsubscribe {
        channel: String,
    },
    Signin {
        auth: String,
        user_data: String,
    },
    /// `client-*` on a channel.
    ClientEvent(Envelope),
    /// Anything else: fk gives it to the backend as a message.
    Other(Envelope),
}

impl ClientMessage {
    pub fn parse(text: &[u8]) -> Result<ClientMessage, &'static str> {
        let envelope = Envelope::parse(text)?;
        let field = |data: &Map<String, Value>, name: &str| data.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(match envelope.event.as_str() {
            "pusher:ping" => ClientMessage::Ping,
            "pusher:pong" => ClientMessage::Pong,
            "pusher:subscribe" => {
                let data = envelope.data_object().ok_or("pusher:subscribe's data is an object")?;
                let channel = field(&data, "channel").ok_or("pusher:subscribe names a channel")?;
                let (auth, channel_data) = (field(&data, "auth"), field(&data, "channel_data"));
                ClientMessage::Subscribe(Subscribe { channel, auth, channel_data })
            }
            "pusher:unsubscribe" => {
                let data = envelope.data_object().ok_or("pusher:unsubscribe's data is an object")?;
                ClientMessage::Unsubscribe {
                    channel: field(&data, "channel").ok_or("pusher:unsubscribe names a channel")?,
                }
            }
            "pusher:signin" => {
                let data = envelope.data_object().ok_or("pusher:signin's data is an object")?;
                let (Some(auth), Some(user_data)) = (field(&data, "auth"), field(&data, "user_data")) else {
                    return Err("pusher:signin carries auth and user_data");
                };
                ClientMessage::Signin { auth, user_data }
            }
            event if event.starts_with("client-") => match envelope.channel {
                Some(_) => ClientMessage::ClientEvent(envelope),
                None => return Err("a client event names its channel"),
            },
            event if event.starts_with("pusher:") || event.starts_with("pusher_internal:") => {
                return Err("no such pusher event")
            }
            _ => ClientMessage::Other(envelope),
        })
    }
}

/// The most JSON a member's `user_info` holds, as fk's own `/v1/join`'s `info`.
pub const MAX_USER_INFO: usize = 2 << 10;

/// A presence member as its `channel_data` says: the user and what the
/// others see of it. A numeric id is taken as its decimal string.
#[derive(Clone, Debug, PartialEq)]
pub struct PresenceMember {
    pub user_id: String,
    pub user_info: Option<Value>,
}

impl PresenceMember {
    pub fn parse(channel_data: &str) -> Result<PresenceMember, &'static str> {
        let Ok(Value::Object(mut data)) = serde_json::from_str::<Value>(channel_data) else {
            return Err("channel_data is a JSON object");
        };
        let user_id = user_id(data.get("user_id")).ok_or("channel_data names its user_id, 1 to 256 bytes")?;
        let user_info = data.remove("user_info");
        if user_info.as_ref().is_some_and(|info| info.to_string().len() > MAX_USER_INFO) {
            return Err("user_info is 2 KiB of JSON at most");
        }
        Ok(PresenceMember { user_id, user_info })
    }
}

/// The first message on a connection.
pub fn connection_established(socket_id: &str, activity_timeout_s: u64) -> String {
    let data = json!({ "socket_id": socket_id, "activity_timeout": activity_timeout_s }).to_string();
    Envelope::new("pusher:connection_established", None, Value::String(data)).to_json()
}

pub fn pong() -> String {
    Envelope::new("pusher:pong", None, json!({})).to_json()
}

/// `pusher:error`, with one of Pusher's codes (4000-4299) when there is one.
pub fn error(code: Option<u16>, message: &str) -> String {
    Envelope::new("pusher:error", None, json!({ "code": code, "message": message })).to_json()
}

/// A subscribe refused (the channel stays unjoined), as `status`.
pub fn subscription_error(channel: &str, status: u16, message: &str) -> String {
    let data = json!({ "type": "AuthError", "error": message, "status": status });
    Envelope::new("pusher:subscription_error", Some(channel), data).to_json()
}

/// A subscribe through: `{}` for a public or private channel; the members,
/// by user, for a presence channel.
pub fn subscription_succeeded(channel: &str, members: Option<&[PresenceMember]>) -> String {
    let data = match members {
        None => "{}".to_owned(),
        Some(members) => {
            let mut hash = Map::new();
            for member in members {
                hash.insert(member.user_id.clone(), member.user_info.clone().unwrap_or(Value::Null));
            }
            let ids: Vec<&String> = hash.keys().collect();
            json!({ "presence": { "count": hash.len(), "ids": ids, "hash": hash } }).to_string()
        }
    };
    Envelope::new("pusher_internal:subscription_succeeded", Some(channel), Value::String(data)).to_json()
}

pub fn member_added(channel: &str, member: &PresenceMember) -> String {
    let data = json!({ "user_id": member.user_id, "user_info": member.user_info.clone().unwrap_or(Value::Null) });
    Envelope::new("pusher_internal:member_added", Some(channel), Value::String(data.to_string())).to_json()
}

pub fn member_removed(channel: &str, user_id: &str) -> String {
    let data = json!({ "user_id": user_id }).to_string();
    Envelope::new("pusher_internal:member_removed", Some(channel), Value::String(data)).to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let mut sent = Envelope::new("client-typing", Some("private-a"), json!({"who": "ann", "n": [1, 2]}));
        assert_eq!(Envelope::parse(sent.to_json().as_bytes()).unwrap(), sent);
        sent.user_id = Some("7".into());
        assert_eq!(Envelope::parse(sent.to_json().as_bytes()).unwrap(), sent);
        let api = Envelope::new("bid", Some("auction"), Value::String(r#"{"amount":5}"#.into()));
        assert_eq!(api.to_json(), r#"{"event":"bid","channel":"auction","data":"{\"amount\":5}"}"#);
        assert_eq!(Envelope::parse(api.to_json().as_bytes()).unwrap(), api);
    }

    #[test]
    fn what_pusher_js_sends_is_read() {
        let read = |text: &str| ClientMessage::parse(text.as_bytes());
        assert_eq!(read(r#"{"event":"pusher:ping","data":{}}"#), Ok(ClientMessage::Ping));
        let subscribe = r#"{"event":"pusher:subscribe","data":{"auth":"k:ab","channel_data":"{\"user_id\":1}","channel":"presence-r"}}"#;
        let Ok(ClientMessage::Subscribe(ask)) = read(subscribe) else { panic!("a subscribe") };
        assert_eq!((ask.channel.as_str(), ask.auth.as_deref()), ("presence-r", Some("k:ab")));
        let member = PresenceMember::parse(ask.channel_data.as_deref().unwrap()).unwrap();
        assert_eq!((member.user_id.as_str(), member.user_info), ("1", None));
        let public = read(r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#);
        assert!(matches!(public, Ok(ClientMessage::Subscribe(Subscribe { auth: None, .. }))));
        let leave = read(r#"{"event":"pusher:unsubscribe","data":{"channel":"news"}}"#);
        assert_eq!(leave, Ok(ClientMessage::Unsubscribe { channel: "news".into() }));
        let whisper = read(r#"{"event":"client-typing","channel":"private-a","data":{"x":1}}"#);
        assert!(matches!(whisper, Ok(ClientMessage::ClientEvent(e)) if e.data == json!({"x": 1})));
        assert!(matches!(read(r#"{"event":"bid","data":"5"}"#), Ok(ClientMessage::Other(_))));
        for bad in [
            "",
            "[]",
            r#"{"data":{}}"#,
            r#"{"event":"pusher:subscribe","data":{}}"#,
            r#"{"event":"pusher:subscribe","data":"not json"}"#,
            r#"{"event":"client-x","data":{}}"#,
            r#"{"event":"pusher_internal:member_added","data":{}}"#,
            r#"{"event":"x","channel":5}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn presence_members_need_a_user_id() {
        let member = PresenceMember::parse(r#"{"user_id":"ann","user_info":{"name":"Ann"}}"#).unwrap();
        assert_eq!(member.user_info, Some(json!({"name": "Ann"})));
        for bad in ["", "{}", r#"{"user_id":""}"#, r#"{"user_id":[1]}"#, "[1]"] {
            assert!(PresenceMember::parse(bad).is_err(), "{bad}");
        }
        let large = serde_json::json!({"user_id": "ann", "user_info": "x".repeat(MAX_USER_INFO)}).to_string();
        assert!(PresenceMember::parse(&large).is_err(), "user_info past 2 KiB");
    }

    #[test]
    fn the_servers_messages_are_what_pusher_js_reads() {
        let established = Envelope::parse(connection_established("1.2", 120).as_bytes()).unwrap();
        assert_eq!(established.data, Value::String(r#"{"socket_id":"1.2","activity_timeout":120}"#.into()));
        let ann = PresenceMember { user_id: "ann".into(), user_info: Some(json!({"name": "Ann"})) };
        let members = [ann.clone(), PresenceMember { user_id: "bob".into(), user_info: None }];
        let succeeded = Envelope::parse(subscription_succeeded("presence-r", Some(&members)).as_bytes()).unwrap();
        let data: Value = serde_json::from_str(succeeded.data.as_str().unwrap()).unwrap();
        assert_eq!(data["presence"]["count"], 2);
        assert_eq!(data["presence"]["hash"]["ann"]["name"], "Ann");
        assert_eq!(data["presence"]["ids"], json!(["ann", "bob"]));
        let added = Envelope::parse(member_added("presence-r", &ann).as_bytes()).unwrap();
        assert_eq!(added.event, "pusher_internal:member_added");
        assert!(error(Some(4001), "no app").contains(r#""code":4001"#));
    }
}
