//! Backend commands, as the wire carries them. Each file holds one
//! command: it parses itself from a binary frame or a JSON body, and
//! encodes itself as frames (for clients). The router applies them.

mod bind;
mod broadcast;
mod channels;
mod count;
mod info;
mod join;
mod kick;
mod leave;
mod members;
mod online;
mod publish;
mod publish_except;
mod send;
mod send_user;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use bind::Bind;
pub use broadcast::Broadcast;
pub use channels::Channels;
pub use count::Count;
pub use info::Info;
pub use join::Join;
pub use kick::Kick;
pub use leave::Leave;
pub use members::Members;
pub use online::Online;
pub use publish::Publish;
pub use publish_except::PublishExcept;
pub use send::SendMsg;
pub use send_user::SendUser;

use crate::{encode_ids, Frame, FrameKind, InvalidSessionId, SessionId};

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 256;
/// Longest user id accepted, in bytes.
pub const MAX_USER_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Send(SendMsg),
    Broadcast(Broadcast),
    Kick(Kick),
    Join(Join),
    Leave(Leave),
    Publish(Publish),
    Info(Info),
    Bind(Bind),
    SendUser(SendUser),
    Members(Members),
    Count(Count),
    Channels(Channels),
    Online(Online),
    PublishExcept(PublishExcept),
    /// HTTP only (`POST /v1/batch`): several commands in order, each with
    /// its own result. On the binary protocol, send several frames.
    Batch(Vec<Command>),
}

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
    Changed { sessions: usize },
    Info(InfoReport),
    Members { sessions: Vec<SessionId>, count: usize },
    Count { count: usize },
    Channels { channels: Vec<String> },
    Online { sessions: Vec<SessionId>, users: Vec<String> },
    Batch { results: Vec<serde_json::Value> },
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
            Reply::Delivered(_) | Reply::Changed { .. } | Reply::Batch { .. } => return None,
        };
        Some(Frame::new(kind, Bytes::new(), data))
    }

    /// OK, for a backend that asked for a reply to every command: the
    /// result as the HTTP API gives it.
    pub fn ok_frame(&self) -> Frame {
        let json = serde_json::to_vec(self).expect("replies serialize");
        Frame::new(FrameKind::Ok, Bytes::new(), Bytes::from(json))
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

/// A validated user id.
fn user_id(raw: &[u8]) -> Result<String, CommandError> {
    let user = std::str::from_utf8(raw).map_err(|_| CommandError::User)?;
    if user.is_empty() || user.len() > MAX_USER_LEN {
        return Err(CommandError::User);
    }
    Ok(user.to_owned())
}

/// Every command's name, as the HTTP API and the metrics call it.
pub const NAMES: [&str; 15] = [
    "send",
    "broadcast",
    "kick",
    "join",
    "leave",
    "publish",
    "info",
    "bind",
    "send_user",
    "members",
    "count",
    "channels",
    "online",
    "publish_except",
    "batch",
];

impl Command {
    /// Its name in [`NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            Command::Send(_) => "send",
            Command::Broadcast(_) => "broadcast",
            Command::Kick(_) => "kick",
            Command::Join(_) => "join",
            Command::Leave(_) => "leave",
            Command::Publish(_) => "publish",
            Command::Info(_) => "info",
            Command::Bind(_) => "bind",
            Command::SendUser(_) => "send_user",
            Command::Members(_) => "members",
            Command::Count(_) => "count",
            Command::Channels(_) => "channels",
            Command::Online(_) => "online",
            Command::PublishExcept(_) => "publish_except",
            Command::Batch(_) => "batch",
        }
    }

    /// Whether fooking's protocol answers it with a frame of its own.
    pub fn has_reply(&self) -> bool {
        matches!(
            self,
            Command::Info(_) | Command::Members(_) | Command::Count(_) | Command::Channels(_) | Command::Online(_)
        )
    }

    /// The largest payload it would push to clients (0 for none): it must
    /// fit a frame to every gateway.
    pub fn largest_payload(&self) -> usize {
        match self {
            Command::Send(SendMsg { payload, .. })
            | Command::Broadcast(Broadcast { payload })
            | Command::Publish(Publish { payload, .. })
            | Command::SendUser(SendUser { payload, .. })
            | Command::PublishExcept(PublishExcept { payload, .. }) => payload.data.len(),
            Command::Batch(commands) => commands.iter().map(Command::largest_payload).max().unwrap_or(0),
            _ => 0,
        }
    }

    pub fn from_frame(frame: Frame) -> Result<Command, CommandError> {
        let kind = frame.kind().ok_or(CommandError::UnknownType(frame.raw_kind))?;
        Ok(match kind {
            FrameKind::SendMsg => Command::Send(SendMsg::from_frame(frame)?),
            FrameKind::SendAll => Command::Broadcast(Broadcast::from_frame(frame)),
            FrameKind::Kick => Command::Kick(Kick::from_frame(frame)?),
            FrameKind::ChAdd => Command::Join(Join::from_frame(frame)?),
            FrameKind::ChDel => Command::Leave(Leave::from_frame(frame)?),
            FrameKind::ChPub => Command::Publish(Publish::from_frame(frame)?),
            FrameKind::Info => Command::Info(Info),
            FrameKind::Bind => Command::Bind(Bind::from_frame(frame)?),
            FrameKind::SendUser => Command::SendUser(SendUser::from_frame(frame)?),
            FrameKind::Members => Command::Members(Members::from_frame(frame)?),
            FrameKind::Count => Command::Count(Count::from_frame(frame)?),
            FrameKind::Channels => Command::Channels(Channels::from_frame(frame)?),
            FrameKind::Online => Command::Online(Online::from_frame(frame)?),
            FrameKind::PublishExcept => Command::PublishExcept(PublishExcept::from_frame(frame)?),
            other => return Err(CommandError::NotACommand(other as u16)),
        })
    }

    /// `name` is the last segment of the HTTP path, `POST /v1/<name>`.
    pub fn from_json(name: &str, body: &[u8]) -> Result<Command, CommandError> {
        fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, CommandError> {
            serde_json::from_slice(body).map_err(|e| CommandError::Body(e.to_string()))
        }
        Ok(match name {
            "send" => Command::Send(parse(body)?),
            "broadcast" => Command::Broadcast(parse(body)?),
            "kick" => Command::Kick(parse(body)?),
            "join" => Command::Join(parse(body)?),
            "leave" => Command::Leave(parse(body)?),
            "publish" => Command::Publish(parse(body)?),
            "info" => Command::Info(Info),
            "bind" => Command::Bind(parse(body)?),
            "send_user" => Command::SendUser(parse(body)?),
            "members" => Command::Members(parse(body)?),
            "count" => Command::Count(parse(body)?),
            "channels" => Command::Channels(parse(body)?),
            "online" => Command::Online(parse(body)?),
            "publish_except" => Command::PublishExcept(parse(body)?),
            "batch" => Command::Batch(Command::batch_from_json(body)?),
            other => return Err(CommandError::UnknownName(other.to_owned())),
        })
    }

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

    pub fn to_frames(&self) -> Vec<Frame> {
        match self {
            Command::Send(cmd) => cmd.to_frames(),
            Command::Broadcast(cmd) => vec![cmd.to_frame()],
            Command::Kick(cmd) => cmd.to_frames(),
            Command::Join(cmd) => cmd.to_frames(),
            Command::Leave(cmd) => cmd.to_frames(),
            Command::Publish(cmd) => vec![cmd.to_frame()],
            Command::Info(cmd) => vec![cmd.to_frame()],
            Command::Bind(cmd) => vec![cmd.to_frame()],
            Command::SendUser(cmd) => vec![cmd.to_frame()],
            Command::Members(cmd) => vec![cmd.to_frame()],
            Command::Count(cmd) => vec![cmd.to_frame()],
            Command::Channels(cmd) => vec![cmd.to_frame()],
            Command::Online(cmd) => vec![cmd.to_frame()],
            Command::PublishExcept(cmd) => vec![cmd.to_frame()],
            Command::Batch(commands) => commands.iter().flat_map(Command::to_frames).collect(),
        }
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

    fn from_bytes(raw: &[u8]) -> Result<Channel, CommandError> {
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
            Command::Join(Join(ChannelSessions { channel: room.clone(), sessions: ids() })),
            Command::Leave(Leave(ChannelSessions { channel: room.clone(), sessions: ids() })),
            Command::Publish(Publish { channel: room.clone(), payload: Payload::text("news") }),
            Command::Info(Info),
            Command::Bind(Bind { session: SessionId::from_u64(7), user: "ann".into() }),
            Command::SendUser(SendUser { user: "ann".into(), payload: Payload::binary(&b"\x01"[..]) }),
            Command::Members(Members { channel: room.clone() }),
            Command::Count(Count { channel: room.clone() }),
            Command::Channels(Channels { session: SessionId::from_u64(7) }),
            Command::Online(Online { sessions: ids(), users: Vec::new() }),
            Command::PublishExcept(PublishExcept { channel: room, except: ids(), payload: Payload::text("not you") }),
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
