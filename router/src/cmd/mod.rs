//! Backend commands. Each file holds one command: it parses itself from a
//! binary frame or a JSON body, encodes itself as frames (for clients),
//! and applies itself to the [`Hub`].

mod broadcast;
mod info;
mod join;
mod kick;
mod leave;
mod publish;
mod send;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use broadcast::Broadcast;
pub use info::Info;
pub use join::Join;
pub use kick::Kick;
pub use leave::Leave;
pub use publish::Publish;
pub use send::Send;

use crate::hub::{Delivered, Hub, InfoReport};
use crate::protocol::{Frame, FrameKind, InvalidSessionId, SessionId};
use crate::store::StoreResult;

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Send(Send),
    Broadcast(Broadcast),
    Kick(Kick),
    Join(Join),
    Leave(Leave),
    Publish(Publish),
    Info(Info),
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
    #[error("invalid request body: {0}")]
    Body(String),
}

/// A command's result, as the HTTP API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Delivered(Delivered),
    Changed { sessions: usize },
    Info(InfoReport),
}

impl Command {
    pub fn from_frame(frame: Frame) -> Result<Command, CommandError> {
        let kind = frame.kind().ok_or(CommandError::UnknownType(frame.kind))?;
        Ok(match kind {
            FrameKind::SendMsg => Command::Send(Send::from_frame(frame)?),
            FrameKind::SendAll => Command::Broadcast(Broadcast::from_frame(frame)),
            FrameKind::Kick => Command::Kick(Kick::from_frame(frame)?),
            FrameKind::ChAdd => Command::Join(Join::from_frame(frame)?),
            FrameKind::ChDel => Command::Leave(Leave::from_frame(frame)?),
            FrameKind::ChPub => Command::Publish(Publish::from_frame(frame)?),
            FrameKind::Info => Command::Info(Info),
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
            other => return Err(CommandError::UnknownName(other.to_owned())),
        })
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
        }
    }

    pub async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        match self {
            Command::Send(cmd) => Ok(cmd.apply(hub).await),
            Command::Broadcast(cmd) => Ok(cmd.apply(hub).await),
            Command::Kick(cmd) => Ok(cmd.apply(hub).await),
            Command::Join(cmd) => cmd.apply(hub).await,
            Command::Leave(cmd) => cmd.apply(hub).await,
            Command::Publish(cmd) => cmd.apply(hub).await,
            Command::Info(cmd) => cmd.apply(hub).await,
        }
    }
}

/// A message for clients. JSON carries it as `"data"` (text) or
/// `"data_base64"` (binary); frames carry the binary flag in `len`'s top bit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PayloadJson")]
pub struct Payload {
    pub data: Bytes,
    pub binary: bool,
}

#[derive(Deserialize)]
struct PayloadJson {
    data: Option<String>,
    data_base64: Option<String>,
}

impl TryFrom<PayloadJson> for Payload {
    type Error = String;
    fn try_from(json: PayloadJson) -> Result<Self, String> {
        match (json.data, json.data_base64) {
            (Some(text), None) => Ok(Payload::text(text)),
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
        Ok(ChannelSessions { channel: Channel::from_bytes(&frame.data)?, sessions: frame.session_ids()? })
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
            Command::Send(Send { sessions: ids(), payload: Payload::binary(&b"\x00\xff"[..]) }),
            Command::Broadcast(Broadcast { payload: Payload::text("hi all") }),
            Command::Kick(Kick { sessions: ids() }),
            Command::Join(Join(ChannelSessions { channel: room.clone(), sessions: ids() })),
            Command::Leave(Leave(ChannelSessions { channel: room.clone(), sessions: ids() })),
            Command::Publish(Publish { channel: room, payload: Payload::text("news") }),
            Command::Info(Info),
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
        let expected = Send { sessions: vec![SessionId::from_u64(1)], payload: Payload::text("hello") };
        assert_eq!(parsed, Ok(Command::Send(expected)));

        let parsed = Command::from_json("publish", br#"{"channel":"c","data_base64":"AAE="}"#);
        let expected = Publish { channel: Channel::new("c").unwrap(), payload: Payload::binary(&b"\x00\x01"[..]) };
        assert_eq!(parsed, Ok(Command::Publish(expected)));
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
            Command::from_frame(Frame { kind: 77, binary: false, sessions: Bytes::new(), data: Bytes::new() }),
            Err(CommandError::UnknownType(77))
        );
        let conn = Frame::new(FrameKind::Conn, Bytes::new(), Bytes::new());
        assert_eq!(Command::from_frame(conn), Err(CommandError::NotACommand(2)));
        let ragged = Frame::new(FrameKind::SendMsg, Bytes::from_static(b"abc"), Bytes::new());
        assert!(matches!(Command::from_frame(ragged), Err(CommandError::SessionId(_))));
    }
}
