//! SYNC and SYNCED on a gateway link: a barrier. A gateway that applied a
//! router's join or leave tells that router so only once every other
//! router it links to has taken the channel's new count: it sends each of
//! them SYNC after the count, and each answers SYNCED once it has applied
//! all the gateway sent before. So a publish through any router reaches a
//! member as soon as a join through another has answered, and no publish
//! reads the store to find out. Session area empty; data: `u64` the
//! barrier's number (a SYNCED of `n` answers every SYNC up to `n`).

use bytes::{Buf, Bytes};

use super::{Frame, FrameKind};

/// A barrier's number, asked (SYNC) or answered (SYNCED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sync(pub u64);

impl Sync {
    pub fn to_frame(self, kind: FrameKind) -> Frame {
        debug_assert!(matches!(kind, FrameKind::Sync | FrameKind::Synced));
        Frame::new(kind, Bytes::new(), Bytes::copy_from_slice(&self.0.to_be_bytes()))
    }

    pub fn from_frame(frame: &Frame) -> Result<Sync, &'static str> {
        let mut data = &frame.data[..];
        if data.len() != 8 || !frame.sessions.is_empty() {
            return Err("a SYNC or SYNCED carries one u64 and no sessions");
        }
        Ok(Sync(data.get_u64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_one() {
        for kind in [FrameKind::Sync, FrameKind::Synced] {
            let frame = Sync(7).to_frame(kind);
            assert_eq!((frame.kind(), Sync::from_frame(&frame)), (Some(kind), Ok(Sync(7))));
        }
        let short = Frame::new(FrameKind::Sync, Bytes::new(), Bytes::from_static(&[0; 7]));
        assert!(Sync::from_frame(&short).is_err());
        let with_ids =
            Frame::new(FrameKind::Sync, Bytes::from_static(b"0000000000000001"), Bytes::from_static(&[0; 8]));
        assert!(Sync::from_frame(&with_ids).is_err());
    }
}
