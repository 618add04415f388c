//! The HEARTBEAT frame a gateway and a router send each other on their
//! link, every interval: data `u32 interval_ms, u32 max_frame`. A peer
//! silent for three of its intervals is dead. `max_frame` is the largest
//! frame data the sender takes, so neither sends the other what it would
//! refuse. [`Liveness`] is either side's clock for it, without I/O.

use std::time::{Duration, Instant};

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

/// What a link's clock asks for when its deadline comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Send our HEARTBEAT.
    Beat,
    /// The peer said nothing for this long: it is dead.
    Silent(Duration),
}

/// One side of a link's heartbeats, with time passed in: when to send its
/// own, and when the peer, silent for [`MISSED_BEATS`] of its intervals,
/// is dead. A gateway leads: it beats from the start and holds the router
/// to its own interval until told the router's. A router answers: it
/// beats, and judges silence, once the gateway's first beat told it how.
#[derive(Clone, Debug)]
pub struct Liveness {
    own: Heartbeat,
    peer: Option<Heartbeat>,
    last_heard: Instant,
    /// `None` until this side beats.
    next_beat: Option<Instant>,
}

impl Liveness {
    pub fn leading(own: Heartbeat, now: Instant) -> Liveness {
        Liveness { own, peer: Some(own), last_heard: now, next_beat: Some(now + own.interval) }
    }

    pub fn answering(own: Heartbeat, now: Instant) -> Liveness {
        Liveness { own, peer: None, last_heard: now, next_beat: None }
    }

    /// A frame came (`beat`, if a HEARTBEAT): the peer lives. Whether to
    /// beat at once: an answering side's first beat answers the peer's.
    pub fn on_frame(&mut self, beat: Option<Heartbeat>, now: Instant) -> bool {
        self.last_heard = now;
        let Some(beat) = beat else { return false };
        self.peer = Some(beat);
        if self.next_beat.is_some() {
            return false;
        }
        self.next_beat = Some(now + self.own.interval);
        true
    }

    /// The peer's last word on what it takes, if it spoke.
    pub fn peer(&self) -> Option<Heartbeat> {
        self.peer
    }

    /// When [`Liveness::on_timeout`] has something to say; `None` while an
    /// answering side waits for the peer's first beat.
    pub fn next_deadline(&self) -> Option<Instant> {
        let silent_at = self.peer.map(|peer| self.last_heard + peer.dead_after());
        match (silent_at, self.next_beat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn on_timeout(&mut self, now: Instant) -> Option<Due> {
        if let Some(peer) = self.peer.filter(|peer| now >= self.last_heard + peer.dead_after()) {
            return Some(Due::Silent(peer.dead_after()));
        }
        let next_beat = self.next_beat.as_mut().filter(|at| now >= **at)?;
        // Beats missed while busy are not made up.
        let next = *next_beat + self.own.interval;
        *next_beat = if next > now { next } else { now + self.own.interval };
        Some(Due::Beat)
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

    fn beat(ms: u64) -> Heartbeat {
        Heartbeat { interval: Duration::from_millis(ms), max_frame: 1 << 20 }
    }

    #[test]
    fn a_leading_side_beats_from_the_start_and_holds_the_peer_to_its_word() {
        let (t0, ms) = (Instant::now(), Duration::from_millis);
        let mut live = Liveness::leading(beat(100), t0);
        assert_eq!(live.next_deadline(), Some(t0 + ms(100)));
        assert_eq!(live.on_timeout(t0 + ms(99)), None);
        assert_eq!(live.on_timeout(t0 + ms(100)), Some(Due::Beat));
        assert_eq!(live.next_deadline(), Some(t0 + ms(200)));
        assert!(!live.on_frame(Some(beat(1_000)), t0 + ms(150)), "it beats already");
        assert_eq!(live.peer(), Some(beat(1_000)));
        assert_eq!(live.on_timeout(t0 + ms(250)), Some(Due::Beat));
        assert_eq!(live.on_timeout(t0 + ms(3_149)), Some(Due::Beat), "late: one beat, not thirty");
        assert_eq!(live.next_deadline(), Some(t0 + ms(3_150)), "the peer's three seconds end first");
        assert_eq!(live.on_timeout(t0 + ms(3_150)), Some(Due::Silent(ms(3_000))));
    }

    #[test]
    fn an_answering_side_waits_for_the_first_beat_then_answers_it_at_once() {
        let (t0, ms) = (Instant::now(), Duration::from_millis);
        let mut live = Liveness::answering(beat(100), t0);
        assert_eq!((live.next_deadline(), live.on_timeout(t0 + ms(10_000))), (None, None), "no word yet: no judging");
        assert!(!live.on_frame(None, t0 + ms(10)), "any frame is a sign of life, not a beat");
        assert!(live.on_frame(Some(beat(50)), t0 + ms(20)), "its first beat is answered");
        assert!(!live.on_frame(Some(beat(50)), t0 + ms(70)));
        assert_eq!(live.next_deadline(), Some(t0 + ms(120)));
        assert_eq!(live.on_timeout(t0 + ms(120)), Some(Due::Beat));
        live.on_frame(None, t0 + ms(200));
        assert_eq!(live.on_timeout(t0 + ms(349)), Some(Due::Beat));
        assert_eq!(live.on_timeout(t0 + ms(350)), Some(Due::Silent(ms(150))));
    }
}
