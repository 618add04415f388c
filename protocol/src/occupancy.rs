//! OCCUPANCY on a gateway link: a router tells the gateway that holds (or
//! held) the session that filled or emptied a presence channel, and the
//! gateway tells its backend (EVENT=6 or 7), so a backend may start and
//! stop feeding a channel. Session area: that session's id; data: one
//! byte (1 occupied, 0 vacated), then the channel name.

use bytes::{BufMut, Bytes, BytesMut};

use super::cmd::Channel;
use super::{Frame, FrameKind, SessionId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occupancy {
    pub session: SessionId,
    pub channel: Channel,
    /// True: the first member joined; false: the last one left.
    pub occupied: bool,
}

impl Occupancy {
    pub fn to_frame(&self) -> Frame {
        let name = self.channel.as_str().as_bytes();
        let mut data = BytesMut::with_capacity(1 + name.len());
        data.put_u8(u8::from(self.occupied));
        data.extend_from_slice(name);
        Frame::new(FrameKind::Occupancy, Bytes::copy_from_slice(self.session.as_bytes()), data.freeze())
    }

    pub fn from_frame(frame: &Frame) -> Result<Occupancy, &'static str> {
        let session = SessionId::parse(&frame.sessions).map_err(|_| "OCCUPANCY without one session id")?;
        let (flag, name) = frame.data.split_first().ok_or("OCCUPANCY without data")?;
        let occupied = match flag {
            0 => false,
            1 => true,
            _ => return Err("OCCUPANCY with a flag other than 0 or 1"),
        };
        let name = std::str::from_utf8(name).map_err(|_| "OCCUPANCY with a channel name not UTF-8")?;
        let channel = Channel::new(name).map_err(|_| "OCCUPANCY with an invalid channel name")?;
        Ok(Occupancy { session, channel, occupied })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_one() {
        for occupied in [true, false] {
            let event =
                Occupancy { session: SessionId::from_u64(9), channel: Channel::new("presence-q").unwrap(), occupied };
            assert_eq!(Occupancy::from_frame(&event.to_frame()), Ok(event));
        }
        let frame = |sessions: &'static [u8], data: &'static [u8]| {
            Frame::new(FrameKind::Occupancy, Bytes::from_static(sessions), Bytes::from_static(data))
        };
        let id = b"0000000000000009";
        assert!(Occupancy::from_frame(&frame(id, b"")).is_err());
        assert!(Occupancy::from_frame(&frame(id, b"\x02room")).is_err());
        assert!(Occupancy::from_frame(&frame(id, b"\x01")).is_err(), "no channel");
        assert!(Occupancy::from_frame(&frame(id, b"\x01\xff")).is_err());
        assert!(Occupancy::from_frame(&frame(b"", b"\x01room")).is_err());
    }
}
