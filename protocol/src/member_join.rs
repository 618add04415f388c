//! MEMBER_JOIN on a gateway link: a session joined a presence channel as
//! the member its client's signed `channel_data` names (a Pusher client's
//! subscribe), so the others hear who, with the info it gave. Session
//! area: that session's id; data: the channel's length (u16, big-endian),
//! the channel, then the member as JSON `{"user":..,"info":..}`.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;

use super::cmd::{Channel, MAX_USER_LEN};
use super::{Frame, FrameKind, SessionId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberJoin {
    pub session: SessionId,
    pub channel: Channel,
    pub user: String,
    pub info: Option<Value>,
}

impl MemberJoin {
    pub fn to_frame(&self) -> Frame {
        let name = self.channel.as_str().as_bytes();
        let mut member = serde_json::json!({ "user": self.user });
        if let Some(info) = &self.info {
            member["info"] = info.clone();
        }
        let member = member.to_string();
        let mut data = BytesMut::with_capacity(2 + name.len() + member.len());
        data.put_u16(name.len() as u16);
        data.extend_from_slice(name);
        data.extend_from_slice(member.as_bytes());
        Frame::new(FrameKind::MemberJoin, Bytes::copy_from_slice(self.session.as_bytes()), data.freeze())
    }

    pub fn from_frame(frame: &Frame) -> Result<MemberJoin, &'static str> {
        let session = SessionId::parse(&frame.sessions).map_err(|_| "MEMBER_JOIN without one session id")?;
        let data = &frame.data[..];
        let (len, rest) = data.split_first_chunk::<2>().ok_or("MEMBER_JOIN without a channel")?;
        let (name, member) = rest.split_at_checked(u16::from_be_bytes(*len) as usize).ok_or("MEMBER_JOIN cut short")?;
        let channel = Channel::from_bytes(name).map_err(|_| "MEMBER_JOIN with an invalid channel name")?;
        let Ok(Value::Object(mut member)) = serde_json::from_slice::<Value>(member) else {
            return Err("MEMBER_JOIN's member is not a JSON object");
        };
        let user = match member.remove("user") {
            Some(Value::String(user)) if !user.is_empty() && user.len() <= MAX_USER_LEN => user,
            _ => return Err("MEMBER_JOIN's member has no valid user"),
        };
        Ok(MemberJoin { session, channel, user, info: member.remove("info") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_one() {
        for info in [None, Some(serde_json::json!({"name": "Ann"}))] {
            let join = MemberJoin {
                session: SessionId::from_u64(9),
                channel: Channel::new("pusher:1:presence-q").unwrap(),
                user: "ann".into(),
                info,
            };
            assert_eq!(MemberJoin::from_frame(&join.to_frame()), Ok(join));
        }
        let frame = |sessions: &'static [u8], data: &'static [u8]| {
            Frame::new(FrameKind::MemberJoin, Bytes::from_static(sessions), Bytes::from_static(data))
        };
        let id = b"0000000000000009";
        for bad in [&b""[..], b"\x00", b"\x00\x09room", b"\x00\x00{\"user\":\"a\"}", b"\x00\x01r[]", b"\x00\x01r{}"] {
            assert!(MemberJoin::from_frame(&frame(id, bad)).is_err(), "{bad:?}");
        }
        assert!(MemberJoin::from_frame(&frame(b"", b"\x00\x01r{\"user\":\"a\"}")).is_err());
        assert!(MemberJoin::from_frame(&frame(id, b"\x00\x01r{\"user\":\"a\"}")).is_ok());
    }
}
