//! Backend commands, as the wire carries them. Each file holds one
//! command, whose [`Wire`] says its name and frame type, parses it from a
//! binary frame or a JSON body, and encodes it as frames (for clients).
//! [`for_each_command!`] lists them once: [`Command`] and its dispatch
//! are made from that list here, and the router's `apply` there. A new
//! command is a file here, a row in the list, and a file in
//! `router/src/cmd/` (and its frame type, if fooking has none).

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{encode_ids, Frame, FrameKind, InvalidSessionId, SessionId};

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 256;
/// Longest user id accepted, in bytes.
pub const MAX_USER_LEN: usize = 256;

/// Every backend command, once: its variant of [`Command`] and the file
/// that holds it (the type there implements [`Wire`]). The router applies
/// them from the same list, with a file of the same name each.
#[macro_export]
macro_rules! for_each_command {
    ($then:ident) => {
        $then! {
            Send(send::SendMsg),
            Broadcast(broadcast::Broadcast),
            Kick(kick::Kick),
            Join(join::Join),
            Leave(leave::Leave),
            Publish(publish::Publish),
            Info(info::Info),
            Bind(bind::Bind),
            SendUser(send_user::SendUser),
            Members(members::Members),
            Count(count::Count),
            Channels(channels::Channels),
            Online(online::Online),
            PublishExcept(publish_except::PublishExcept),
            Presence(presence::Presence),
            History(history::History),
        }
    };
}

/// One backend command: the name the HTTP API and the metrics know it by,
/// the frame type that carries it, and its two layouts.
pub trait Wire: Sized + serde::de::DeserializeOwned {
    const NAME: &'static str;
    const KIND: FrameKind;
    /// Whether fooking's protocol answers it with a frame of its own.
    const ANSWERED: bool = false;

    fn from_frame(frame: Frame) -> Result<Self, CommandError>;
    /// From the body of `POST /v1/<NAME>`.
    fn from_json(body: &[u8]) -> Result<Self, CommandError> {
        serde_json::from_slice(body).map_err(|e| CommandError::Body(e.to_string()))
    }
    /// As a client sends it: more than one frame past 4,095 sessions.
    fn to_frames(&self) -> Vec<Frame>;
    /// What it pushes to clients, if anything.
    fn payload(&self) -> Option<&Payload> {
        None
    }
}

macro_rules! commands {
    ($($variant:ident($file:ident::$command:ident)),* $(,)?) => {
        $(mod $file;)*
        $(pub use $file::$command;)*

        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Command {
            $($variant($command),)*
            /// HTTP only (`POST /v1/batch`): several commands in order, each with
            /// its own result. On the binary protocol, send several frames.
            Batch(Vec<Command>),
        }

        /// Every command's name, as the HTTP API and the metrics call it.
        pub const NAMES: &[&str] = &[$(<$command as Wire>::NAME,)* "batch"];

        impl Command {
            /// Its name in [`NAMES`].
            pub fn name(&self) -> &'static str {
                match self {
                    $(Command::$variant(_) => <$command as Wire>::NAME,)*
                    Command::Batch(_) => "batch",
                }
            }

            /// Whether fooking's protocol answers it with a frame of its own.
            pub fn has_reply(&self) -> bool {
                match self {
                    $(Command::$variant(_) => <$command as Wire>::ANSWERED,)*
                    Command::Batch(_) => false,
                }
            }

            /// The largest payload it would push to clients (0 for none): it must
            /// fit a frame to every gateway.
            pub fn largest_payload(&self) -> usize {
                match self {
                    $(Command::$variant(command) => command.payload().map_or(0, |payload| payload.data.len()),)*
                    Command::Batch(commands) => commands.iter().map(Command::largest_payload).max().unwrap_or(0),
                }
            }

            pub fn from_frame(frame: Frame) -> Result<Command, CommandError> {
                let kind = frame.kind().ok_or(CommandError::UnknownType(frame.raw_kind))?;
                $(if kind == <$command as Wire>::KIND {
                    return Ok(Command::$variant(<$command as Wire>::from_frame(frame)?));
                })*
                Err(CommandError::NotACommand(kind as u16))
            }

            /// `name` is the last segment of the HTTP path, `POST /v1/<name>`.
            pub fn from_json(name: &str, body: &[u8]) -> Result<Command, CommandError> {
                $(if name == <$command as Wire>::NAME {
                    return <$command as Wire>::from_json(body).map(Command::$variant);
                })*
                match name {
                    "batch" => Ok(Command::Batch(Command::batch_from_json(body)?)),
                    other => Err(CommandError::UnknownName(other.to_owned())),
                }
            }

            pub fn to_frames(&self) -> Vec<Frame> {
                match self {
                    $(Command::$variant(command) => command.to_frames(),)*
                    Command::Batch(commands) => commands.iter().flat_map(Command::to_frames).collect(),
                }
            }
        }
    };
}

for_each_command!(commands);
pub use history::Entry;
pub use join::MAX_INFO_BYTES;
pub use presence::Member;
pub use publish_except::publish_frame;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("unknown frame type {0}")]
    UnknownType(u16),
    #[error("frame type {0} is not a backend command")]
    NotACommand(u16),
    #[error("unknown command {0:?}")]
    UnknownName(String),
    #[error(transparent)]
    SessionId(#[from] InvalidSessionId),
    #[error("a channel name is 1 to {MAX_CHANNEL_LEN} bytes of UTF-8")]
    Channel,
    #[error("a user id is 1 to {MAX_USER_LEN} bytes of UTF-8")]
    User,
    #[error("invalid request body: {0}")]
    Body(String),
}

/// What a push reached: sessions found online and gateways sent to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub sessions: usize,
    pub delivered_to_gateways: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayInfo {
    pub server_id: i32,
    pub worker_id: i32,
    pub sessions: usize,
    pub channels: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfoReport {
    pub clients: usize,
    pub channels: usize,
    pub gateways: Vec<GatewayInfo>,
}

impl InfoReport {
    /// fooking's INFO reply body.
    pub fn to_text(&self) -> String {
        let mut text = format!("clients: {}\r\nchannels: {}\r\n", self.clients, self.channels);
        for gw in &self.gateways {
            text.push_str(&format!(
                "gateway: {}\t{}\t{}\t{}\r\n",
                gw.server_id, gw.worker_id, gw.sessions, gw.channels
            ));
        }
        text
    }
}

/// A command's result, as the HTTP API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Delivered(Delivered),
    Changed {
        sessions: usize,
    },
    Info(InfoReport),
    Members {
        sessions: Vec<SessionId>,
        count: usize,
    },
    Count {
        count: usize,
    },
    Channels {
        channels: Vec<String>,
    },
    Online {
        sessions: Vec<SessionId>,
        users: Vec<String>,
    },
    Presence {
        count: usize,
        members: Vec<Member>,
        /// The cursor of the next page, when more members are listed than fit.
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<SessionId>,
    },
    History {
        entries: Vec<Entry>,
        /// With `since`: whether that offset is still kept, so `entries` are all that came after it.
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// More are kept after the last entry than fit one answer: ask again `since` its offset.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        more: bool,
    },
    /// A join with `since`: the sessions newly joined, and whether they got all that came after it.
    Recovered {
        sessions: usize,
        recovered: bool,
    },
    Batch {
        results: Vec<serde_json::Value>,
    },
}

impl Reply {
    /// The reply frame for the binary protocol, for the commands that have one.
    pub fn to_frame(&self) -> Option<Frame> {
        let (kind, data) = match self {
            Reply::Info(report) => (FrameKind::Info, Bytes::from(report.to_text())),
            Reply::Members { sessions, .. } => (FrameKind::Members, encode_ids(sessions)),
            Reply::Count { count } => (FrameKind::Count, Bytes::from(count.to_string())),
            Reply::Channels { channels } => (FrameKind::Channels, Bytes::from(channels.join("\n"))),
            Reply::Online { sessions, .. } => (FrameKind::Online, encode_ids(sessions)),
            Reply::Presence { .. } => (FrameKind::Presence, self.to_json()),
            Reply::History { .. } => (FrameKind::History, self.to_json()),
            Reply::Delivered(_) | Reply::Changed { .. } | Reply::Recovered { .. } | Reply::Batch { .. } => return None,
        };
        Some(Frame::new(kind, Bytes::new(), data))
    }

    /// OK, for a backend that asked for a reply to every command: the
    /// result as the HTTP API gives it.
    pub fn ok_frame(&self) -> Frame {
        Frame::new(FrameKind::Ok, Bytes::new(), self.to_json())
    }

    /// The result as the HTTP API gives it.
    pub fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("replies serialize"))
    }
}

/// An error as the HTTP API and the ERROR frame give it:
/// `{"error":{"code":..,"message":..}}`.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}

/// ERROR, for a backend that asked for a reply to every command.
pub fn error_frame(code: &str, message: &str) -> Frame {
    Frame::new(FrameKind::Error, Bytes::new(), Bytes::from(error_body(code, message).to_string()))
}

/// A history offset as the router gives them: digits, or a Redis stream
/// id (`1718000000000-0`).
fn offset(raw: &str) -> Result<(), CommandError> {
    let valid = (1..=41).contains(&raw.len())
        && raw.split('-').count() <= 2
        && raw.split('-').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    match valid {
        true => Ok(()),
        false => Err(CommandError::Body(format!("{raw:?} is not an offset the router gives"))),
    }
}

/// A query's options in a frame's data: none when it is empty, else JSON.
fn frame_options<T: Default + serde::de::DeserializeOwned>(data: &[u8]) -> Result<T, CommandError> {
    match data.is_empty() {
        true => Ok(T::default()),
        false => serde_json::from_slice(data).map_err(|e| CommandError::Body(format!("a query's options: {e}"))),
    }
}

/// A query's options as a frame's data: empty when `none` are given.
fn options_data(options: &impl Serialize, none: bool) -> Bytes {
    match none {
        true => Bytes::new(),
        false => Bytes::from(serde_json::to_vec(options).expect("options serialize")),
    }
}

/// A validated user id: what a backend's BIND and a gateway's carry.
pub fn user_id(raw: &[u8]) -> Result<String, CommandError> {
    let user = std::str::from_utf8(raw).map_err(|_| CommandError::User)?;
    if user.is_empty() || user.len() > MAX_USER_LEN {
        return Err(CommandError::User);
    }
    Ok(user.to_owned())
}

impl Command {
    /// `[{"command": "send", ...that command's fields}, ...]`
    fn batch_from_json(body: &[u8]) -> Result<Vec<Command>, CommandError> {
        let items: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(body)
            .map_err(|e| CommandError::Body(format!("a batch is a JSON array of objects: {e}")))?;
        items
            .into_iter()
            .enumerate()
            .map(|(i, mut item)| {
                let name = match item.remove("command") {
                    Some(serde_json::Value::String(name)) if name != "batch" => name,
                    _ => {
                        return Err(CommandError::Body(format!(
                            "batch item {i}: \"command\" names a command other than batch"
                        )))
                    }
                };
                let body = serde_json::Value::Object(item).to_string();
                Command::from_json(&name, body.as_bytes())
                    .map_err(|e| CommandError::Body(format!("batch item {i}: {e}")))
            })
            .collect()
    }
}

/// A message for clients. JSON carries it as `"data"` (text: a string as it
/// is, any other JSON value as compact JSON) or `"data_base64"` (binary);
/// frames carry the binary flag in `len`'s top bit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PayloadJson")]
pub struct Payload {
    pub data: Bytes,
    pub binary: bool,
}

#[derive(Deserialize)]
struct PayloadJson {
    data: Option<serde_json::Value>,
    data_base64: Option<String>,
}

impl TryFrom<PayloadJson> for Payload {
    type Error = String;
    fn try_from(json: PayloadJson) -> Result<Self, String> {
        match (json.data, json.data_base64) {
            (Some(serde_json::Value::String(text)), None) => Ok(Payload::text(text)),
            // Keys keep the caller's order (serde_json's preserve_order).
            (Some(value), None) => Ok(Payload::text(value.to_string())),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(|raw| Payload { data: raw.into(), binary: true })
                .map_err(|e| format!("data_base64: {e}")),
            _ => Err("give exactly one of \"data\" and \"data_base64\"".into()),
        }
    }
}

impl Payload {
    pub fn text(text: impl Into<String>) -> Payload {
        Payload { data: Bytes::from(text.into()), binary: false }
    }

    pub fn binary(data: impl Into<Bytes>) -> Payload {
        Payload { data: data.into(), binary: true }
    }

    fn from_frame(frame: &Frame) -> Payload {
        Payload { data: frame.data.clone(), binary: frame.binary }
    }
}

/// A validated channel name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Channel(String);

impl Channel {
    pub fn new(name: impl Into<String>) -> Result<Channel, CommandError> {
        let name = name.into();
        if name.is_empty() || name.len() > MAX_CHANNEL_LEN {
            return Err(CommandError::Channel);
        }
        Ok(Channel(name))
    }

    pub fn from_bytes(raw: &[u8]) -> Result<Channel, CommandError> {
        let name = std::str::from_utf8(raw).map_err(|_| CommandError::Channel)?;
        Channel::new(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Channel {
    type Error = CommandError;
    fn try_from(name: String) -> Result<Self, CommandError> {
        Channel::new(name)
    }
}

/// Sessions and a channel: the shape of join and leave, whose frames
/// (CH_ADD, CH_DEL) carry the ids in the session area and the channel as data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChannelSessions {
    pub channel: Channel,
    pub sessions: Vec<SessionId>,
}

impl ChannelSessions {
    fn from_frame(frame: &Frame) -> Result<ChannelSessions, CommandError> {
        Ok(ChannelSessions { channel: Channel::from_bytes(&frame.data)?, sessions: frame.session_ids()?.collect() })
    }

    fn to_frames(&self, kind: FrameKind) -> Vec<Frame> {
        let channel = Bytes::copy_from_slice(self.channel.as_str().as_bytes());
        Frame::for_sessions(kind, &self.sessions, channel, false).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_listed_name_parses_as_its_command() {
        for name in super::NAMES {
            match super::Command::from_json(name, b"[]") {
                Ok(command) => assert_eq!(command.name(), *name),
                Err(err) => assert!(matches!(err, super::CommandError::Body(_)), "{name}: {err}"),
            }
        }
    }

    use super::*;

    fn ids() -> Vec<SessionId> {
        vec![SessionId::from_u64(1), SessionId::from_u64(0xabc)]
    }

    #[test]
    fn every_command_round_trips_through_frames() {
        let room = Channel::new("room").unwrap();
        let commands = [
            Command::Send(SendMsg { sessions: ids(), payload: Payload::binary(&b"\x00\xff"[..]) }),
            Command::Broadcast(Broadcast { payload: Payload::text("hi all") }),
            Command::Kick(Kick { sessions: ids() }),
            Command::Join(Join::new(ChannelSessions { channel: room.clone(), sessions: ids() })),
            Command::Leave(Leave(ChannelSessions { channel: room.clone(), sessions: ids() })),
            Command::Publish(Publish { channel: room.clone(), payload: Payload::text("news") }),
            Command::Info(Info),
            Command::Bind(Bind { session: SessionId::from_u64(7), user: "ann".into() }),
            Command::SendUser(SendUser { user: "ann".into(), payload: Payload::binary(&b"\x01"[..]) }),
            Command::Members(Members { channel: room.clone() }),
            Command::Count(Count { channel: room.clone() }),
            Command::Channels(Channels { session: SessionId::from_u64(7) }),
            Command::Online(Online { sessions: ids(), users: Vec::new() }),
            Command::PublishExcept(PublishExcept {
                channel: room.clone(),
                except: ids(),
                payload: Payload::text("not you"),
            }),
            Command::Presence(Presence { channel: room.clone(), limit: None, cursor: None }),
            Command::Presence(Presence { channel: room.clone(), limit: Some(5), cursor: Some(SessionId::from_u64(9)) }),
            Command::History(History { channel: room.clone(), limit: None, since: None }),
            Command::History(History { channel: room, limit: Some(3), since: Some("1718000000000-0".into()) }),
        ];
        for command in commands {
            let mut frames = command.to_frames();
            assert_eq!(frames.len(), 1);
            assert_eq!(Command::from_frame(frames.remove(0)).unwrap(), command);
        }
    }

    #[test]
    fn publish_carries_the_channel_in_the_session_area() {
        let cmd = Publish { channel: Channel::new("chat-channel-1").unwrap(), payload: Payload::text("x") };
        let frame = cmd.to_frame();
        assert_eq!(&frame.sessions[..], b"chat-channel-1");
        assert_eq!(&frame.data[..], b"x");
    }

    #[test]
    fn json_bodies_parse_into_the_same_commands() {
        let id = "0000000000000001";
        let parsed = Command::from_json("send", format!(r#"{{"sessions":["{id}"],"data":"hello"}}"#).as_bytes());
        let expected = SendMsg { sessions: vec![SessionId::from_u64(1)], payload: Payload::text("hello") };
        assert_eq!(parsed, Ok(Command::Send(expected)));

        let parsed = Command::from_json("publish", br#"{"channel":"c","data_base64":"AAE="}"#);
        let expected = Publish { channel: Channel::new("c").unwrap(), payload: Payload::binary(&b"\x00\x01"[..]) };
        assert_eq!(parsed, Ok(Command::Publish(expected)));
    }

    #[test]
    fn a_join_may_say_who_joins_a_presence_channel_and_ask_for_history() {
        let id = "0000000000000001";
        let body = format!(
            r#"{{"channel":"presence-q","sessions":["{id}"],"user":"ann","info":{{"team":3}},"history":true}}"#
        );
        let Ok(Command::Join(join)) = Command::from_json("join", body.as_bytes()) else { panic!("{body}") };
        assert_eq!(join.target.channel.as_str(), "presence-q");
        assert_eq!(
            (join.user.as_deref(), join.info, join.history),
            (Some("ann"), Some(serde_json::json!({"team":3})), true)
        );
        let plain = Command::from_json("join", format!(r#"{{"channel":"c","sessions":["{id}"]}}"#).as_bytes());
        assert!(matches!(plain, Ok(Command::Join(Join { user: None, info: None, history: false, .. }))));
        let empty_user = format!(r#"{{"channel":"c","sessions":["{id}"],"user":""}}"#);
        assert_eq!(Command::from_json("join", empty_user.as_bytes()), Err(CommandError::User));
        for (since, ok) in
            [("17", true), ("1718000000000-3", true), ("-1", false), ("1-2-3", false), ("x", false), ("", false)]
        {
            let body = format!(r#"{{"channel":"c","sessions":["{id}"],"since":"{since}"}}"#);
            assert_eq!(Command::from_json("join", body.as_bytes()).is_ok(), ok, "{since}");
        }
        let big = "x".repeat(MAX_INFO_BYTES);
        let big_info = format!(r#"{{"channel":"c","sessions":["{id}"],"info":"{big}"}}"#);
        assert!(
            matches!(Command::from_json("join", big_info.as_bytes()), Err(CommandError::Body(m)) if m.contains("info"))
        );
    }

    #[test]
    fn json_data_other_than_a_string_goes_as_compact_json_text() {
        let publish = |body: &str| match Command::from_json("publish", body.as_bytes()) {
            Ok(Command::Publish(p)) => Ok(p.payload),
            other => Err(format!("{other:?}")),
        };
        let object = publish(r#"{"channel":"c","data":{ "type" : "bid", "amount": [1, 2.5] }}"#);
        assert_eq!(object, Ok(Payload::text(r#"{"type":"bid","amount":[1,2.5]}"#)));
        assert_eq!(
            publish(r#"{"channel":"c","data":"{\"a\":1}"}"#),
            Ok(Payload::text(r#"{"a":1}"#)),
            "a string stays as it is"
        );
        assert_eq!(publish(r#"{"channel":"c","data":42}"#), Ok(Payload::text("42")));
        let spaced = publish(r#"{"channel":"c","data":[ "a \" b", {"k\\": " v "} ]}"#);
        assert_eq!(spaced, Ok(Payload::text(r#"["a \" b",{"k\\":" v "}]"#)), "spaces inside strings stay");
        assert!(publish(r#"{"channel":"c","data":null}"#).unwrap_err().contains("exactly one"), "null is no message");
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let long = "x".repeat(MAX_CHANNEL_LEN + 1);
        let body = format!(r#"{{"channel":"{long}","sessions":[]}}"#);
        assert!(
            matches!(Command::from_json("join", body.as_bytes()), Err(CommandError::Body(m)) if m.contains("channel name"))
        );
        assert!(matches!(
            Command::from_json("send", br#"{"sessions":["NOPE"],"data":"x"}"#),
            Err(CommandError::Body(_))
        ));
        assert!(
            matches!(Command::from_json("send", br#"{"sessions":[],"data":"x","data_base64":"AA=="}"#), Err(CommandError::Body(m)) if m.contains("exactly one"))
        );
        assert_eq!(Command::from_json("frobnicate", b"{}"), Err(CommandError::UnknownName("frobnicate".into())));
        assert_eq!(
            Command::from_frame(Frame { raw_kind: 77, binary: false, sessions: Bytes::new(), data: Bytes::new() }),
            Err(CommandError::UnknownType(77))
        );
        let conn = Frame::new(FrameKind::Conn, Bytes::new(), Bytes::new());
        assert_eq!(Command::from_frame(conn), Err(CommandError::NotACommand(2)));
        let ragged = Frame::new(FrameKind::SendMsg, Bytes::from_static(b"abc"), Bytes::new());
        assert!(matches!(Command::from_frame(ragged), Err(CommandError::SessionId(_))));
    }
}
