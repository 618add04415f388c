//! CH_SUB and CH_UNSUB on a gateway link: a gateway tells each router how
//! many of its sessions are in a channel, so that a publish goes to the
//! gateways that hold members, as one frame each, and each gateway walks
//! its own members. Session area empty; data: `u64 version`, `u64
//! changes_seen`, `u32 members`, then the channel name. CH_SUB says
//! `members > 0`, CH_UNSUB `members == 0`.
//!
//! `version` grows with every change on the gateway: a router keeps the
//! newest and ignores older ones, whatever order the gateway's tasks queued
//! them in. `changes_seen` is how many CH_ADD and CH_DEL frames the gateway
//! has applied from this router on this link: a router that has sent more
//! since does not take an "empty" for true, as its join may be on the way;
//! and a gateway answers each with the channel's count, so a router knows
//! when its joins and leaves are applied.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::cmd::Channel;
use super::{Frame, FrameKind};

const HEADER: usize = 8 + 8 + 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interest {
    pub channel: Channel,
    pub members: u32,
    pub version: u64,
    pub changes_seen: u64,
}

impl Interest {
    pub fn to_frame(&self) -> Frame {
        let name = self.channel.as_str().as_bytes();
        let mut data = BytesMut::with_capacity(HEADER + name.len());
        data.put_u64(self.version);
        data.put_u64(self.changes_seen);
        data.put_u32(self.members);
        data.extend_from_slice(name);
        let kind = if self.members > 0 { FrameKind::ChSub } else { FrameKind::ChUnsub };
        Frame::new(kind, Bytes::new(), data.freeze())
    }

    pub fn from_frame(frame: &Frame) -> Result<Interest, &'static str> {
        let kind = frame.kind();
        if !matches!(kind, Some(FrameKind::ChSub | FrameKind::ChUnsub)) {
            return Err("not a CH_SUB or CH_UNSUB");
        }
        let mut data = &frame.data[..];
        if data.len() < HEADER {
            return Err("a CH_SUB carries 20 bytes before the channel");
        }
        let (version, changes_seen, members) = (data.get_u64(), data.get_u64(), data.get_u32());
        if (members > 0) != (kind == Some(FrameKind::ChSub)) {
            return Err("CH_SUB counts members, CH_UNSUB none");
        }
        let channel = std::str::from_utf8(data).map_err(|_| "a channel name is UTF-8")?;
        let channel = Channel::new(channel).map_err(|_| "a channel name is 1 to 256 bytes")?;
        Ok(Interest { channel, members, version, changes_seen })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interests_round_trip_and_refuse_nonsense() {
        for members in [0, 1, 10_000] {
            let interest = Interest { channel: Channel::new("room").unwrap(), members, version: 7, changes_seen: 3 };
            let frame = interest.to_frame();
            assert_eq!(frame.kind(), Some(if members > 0 { FrameKind::ChSub } else { FrameKind::ChUnsub }));
            assert_eq!(Interest::from_frame(&frame), Ok(interest));
        }
        let short = Frame::new(FrameKind::ChSub, Bytes::new(), Bytes::from_static(&[0; 19]));
        assert!(Interest::from_frame(&short).is_err());
        let nameless = Frame::new(FrameKind::ChSub, Bytes::new(), Bytes::from_static(&[0; 20]));
        assert!(Interest::from_frame(&nameless).is_err());
        let mut lying =
            Interest { channel: Channel::new("a").unwrap(), members: 0, version: 1, changes_seen: 0 }.to_frame();
        lying.raw_kind = FrameKind::ChSub as u16;
        assert!(Interest::from_frame(&lying).is_err(), "a CH_SUB of no members");
    }
}
