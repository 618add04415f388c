//! The HEARTBEAT frame a gateway and a router send each other on their
//! link, every interval: data `u32 interval_ms, u32 max_frame`. A peer
//! silent for three of its intervals is dead. `max_frame` is the largest
//! frame data the sender takes, so neither sends the other what it would
//! refuse.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Frame, FrameKind};

/// Intervals of silence after which a peer is dead.
pub const MISSED_BEATS: u32 = 3;
/// The interval routers and gateways use unless told otherwise.
pub const DEFAULT_HEARTBEAT_MS: u64 = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub interval: Duration,
    pub max_frame: usize,
}

impl Heartbeat {
    pub fn to_frame(self) -> Frame {
        let mut data = BytesMut::with_capacity(8);
        data.put_u32(u32::try_from(self.interval.as_millis()).unwrap_or(u32::MAX));
        data.put_u32(u32::try_from(self.max_frame).unwrap_or(u32::MAX));
        Frame::new(FrameKind::Heartbeat, Bytes::new(), data.freeze())
    }

    pub fn from_frame(frame: &Frame) -> Result<Heartbeat, &'static str> {
        let data: [u8; 8] = frame.data[..].try_into().map_err(|_| "a HEARTBEAT carries 8 bytes")?;
        let interval_ms = u32::from_be_bytes(data[..4].try_into().expect("4 bytes"));
        if interval_ms == 0 {
            return Err("a HEARTBEAT's interval is at least 1 ms");
        }
        let max_frame = u32::from_be_bytes(data[4..].try_into().expect("4 bytes")) as usize;
        Ok(Heartbeat { interval: Duration::from_millis(interval_ms.into()), max_frame })
    }

    /// How long the sender may stay silent before it counts as dead.
    pub fn dead_after(self) -> Duration {
        self.interval * MISSED_BEATS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_round_trip_and_refuse_nonsense() {
        let beat = Heartbeat { interval: Duration::from_millis(2000), max_frame: 1 << 20 };
        assert_eq!(Heartbeat::from_frame(&beat.to_frame()), Ok(beat));
        assert_eq!(beat.dead_after(), Duration::from_secs(6));
        let short = Frame::new(FrameKind::Heartbeat, Bytes::new(), Bytes::from_static(&[0, 0, 7]));
        assert!(Heartbeat::from_frame(&short).is_err());
        let zero = Frame::new(FrameKind::Heartbeat, Bytes::new(), Bytes::from_static(&[0; 8]));
        assert!(Heartbeat::from_frame(&zero).is_err());
    }
}
