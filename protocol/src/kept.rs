//! A kept channel's messages on a gateway link, with their offsets: what
//! makes a join with history exact whichever routers the publishes and
//! the join go through. The store gives every kept message its offset; a
//! router publishes it as KEPT_PUB, and joins sessions with history by
//! KEPT_JOIN (a CH_ADD after which they wait), the kept messages (SEND_MSG)
//! and KEPT_END, the offset those reached. The gateway holds a joining
//! session's live messages until its KEPT_END, then passes on those after
//! that offset and drops those before: none lost, none twice, in order.
//!
//! - KEPT_JOIN: session area the ids; data the channel name (as CH_ADD).
//! - KEPT_PUB: session area the ids left out (as PUBLISH_EXCEPT); data
//!   `u16` channel length, the channel, `u8` offset length, the offset,
//!   then the payload (its binary flag in the frame's).
//! - KEPT_END: session area the joining ids; data `u16` channel length,
//!   the channel, `u8` offset length, the offset the history reached.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::cmd::{Channel, Payload};
use super::{encode_ids, Frame, FrameKind, SessionId};

/// Where a kept message stands in its channel: a number in a router's
/// memory, a Redis stream id (`MS-SEQ`) on Redis. Offsets of one channel
/// grow; they compare as the pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64, pub u64);

impl Offset {
    pub fn parse(text: &str) -> Option<Offset> {
        match text.split_once('-') {
            Some((ms, seq)) => Some(Offset(ms.parse().ok()?, seq.parse().ok()?)),
            None => Some(Offset(text.parse().ok()?, 0)),
        }
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A kept message, published to the channel's members but `except`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptPub {
    pub except: Vec<SessionId>,
    pub channel: Channel,
    pub offset: Offset,
    pub payload: Payload,
}

/// The end of joining sessions' history (the sessions are the frame's):
/// the offset it reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptEnd {
    pub channel: Channel,
    pub upto: Offset,
}

/// `u16` channel length, the channel, `u8` offset length, the offset.
fn put_head(data: &mut BytesMut, channel: &Channel, offset: Offset) {
    let name = channel.as_str().as_bytes();
    let offset = offset.to_string();
    data.put_u16(name.len() as u16);
    data.extend_from_slice(name);
    data.put_u8(offset.len() as u8);
    data.extend_from_slice(offset.as_bytes());
}

fn take_head(data: &mut Bytes) -> Result<(Channel, Offset), &'static str> {
    let short = "a kept frame shorter than its channel and offset";
    if data.len() < 2 {
        return Err(short);
    }
    let len = data.get_u16() as usize;
    if data.len() < len + 1 {
        return Err(short);
    }
    let name = data.split_to(len);
    let channel =
        std::str::from_utf8(&name).ok().and_then(|name| Channel::new(name).ok()).ok_or("a kept frame's channel")?;
    let len = data.get_u8() as usize;
    if data.len() < len {
        return Err(short);
    }
    let offset = std::str::from_utf8(&data.split_to(len)).ok().and_then(Offset::parse);
    Ok((channel, offset.ok_or("a kept frame's offset is a number or MS-SEQ")?))
}

fn ids(frame: &Frame) -> Result<Vec<SessionId>, &'static str> {
    Ok(frame.session_ids().map_err(|_| "a kept frame's session ids")?.collect())
}

impl KeptPub {
    /// One frame, whatever `except` holds: a router leaves out at most a
    /// command's ids, which fit one.
    pub fn to_frame(&self) -> Frame {
        let mut data = BytesMut::with_capacity(48 + self.channel.as_str().len() + self.payload.data.len());
        put_head(&mut data, &self.channel, self.offset);
        data.extend_from_slice(&self.payload.data);
        let mut frame = Frame::new(FrameKind::KeptPub, encode_ids(&self.except), data.freeze());
        frame.binary = self.payload.binary;
        frame
    }

    pub fn from_frame(frame: &Frame) -> Result<KeptPub, &'static str> {
        let mut data = frame.data.clone();
        let (channel, offset) = take_head(&mut data)?;
        Ok(KeptPub { except: ids(frame)?, channel, offset, payload: Payload { data, binary: frame.binary } })
    }
}

impl KeptEnd {
    /// The frame's data, for [`Frame::for_sessions`].
    pub fn to_data(&self) -> Bytes {
        let mut data = BytesMut::new();
        put_head(&mut data, &self.channel, self.upto);
        data.freeze()
    }

    pub fn from_frame(frame: &Frame) -> Result<(Vec<SessionId>, KeptEnd), &'static str> {
        let mut data = frame.data.clone();
        let (channel, upto) = take_head(&mut data)?;
        if !data.is_empty() {
            return Err("a KEPT_END with more than its channel and offset");
        }
        Ok((ids(frame)?, KeptEnd { channel, upto }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_compare_as_the_store_gives_them() {
        assert!(Offset::parse("9").unwrap() < Offset::parse("10").unwrap());
        assert!(Offset::parse("1718000000000-1").unwrap() < Offset::parse("1718000000001-0").unwrap());
        assert!(Offset::parse("1718000000000-1").unwrap() > Offset::parse("1718000000000-0").unwrap());
        assert_eq!(Offset::parse(&Offset(7, 2).to_string()), Some(Offset(7, 2)));
        for bad in ["", "x", "1-", "-1", "1-2-3"] {
            assert_eq!(Offset::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_and_refuses_what_is_not_one() {
        let sessions = vec![SessionId::from_u64(1), SessionId::from_u64(2)];
        let channel = Channel::new("news").unwrap();
        let message = KeptPub {
            except: sessions.clone(),
            channel: channel.clone(),
            offset: Offset(1718000000000, 3),
            payload: Payload::binary(&b"\x00\x01"[..]),
        };
        let frame = message.to_frame();
        assert_eq!((frame.kind(), KeptPub::from_frame(&frame)), (Some(FrameKind::KeptPub), Ok(message)));
        let end = KeptEnd { channel, upto: Offset(42, 0) };
        let frame = Frame::for_sessions(FrameKind::KeptEnd, &sessions, end.to_data(), false).next().unwrap();
        assert_eq!(KeptEnd::from_frame(&frame), Ok((sessions, end)));
        let frame = |data: &'static [u8]| Frame::new(FrameKind::KeptPub, Bytes::new(), Bytes::from_static(data));
        for bad in [&b""[..], b"\x00", b"\x00\x04news", b"\x00\x04news\x05ab", b"\x00\x04news\x02x1", b"\x00\x00\x011"]
        {
            assert!(KeptPub::from_frame(&frame(bad)).is_err(), "{bad:?}");
        }
        let long = Frame::new(FrameKind::KeptEnd, Bytes::new(), Bytes::from_static(b"\x00\x04news\x011!"));
        assert!(KeptEnd::from_frame(&long).is_err());
    }
}
