//! Sessions that joined a kept channel with its history (KEPT_JOIN) and
//! what each does with the channel's live messages (KEPT_PUB, from any
//! router): until their KEPT_END, hold them; then pass on those after the
//! offset the history reached and drop those it held. A late live message
//! from a slower router's link is still dropped for a while after. So a
//! joiner gets the history, then the live messages, none twice, none lost,
//! whichever routers the join and the publishes went through. No I/O here,
//! and time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use protocol::{Offset, SessionId};

use crate::base::message::Message;

/// How long a joiner waits for its KEPT_END at most: a router's join waits
/// 1 s for the gateways and 2 s for the store, so past this the router is
/// gone, and what was held is passed on as it is.
pub const AWAIT_END: Duration = Duration::from_secs(5);

/// How long after its KEPT_END a joiner still drops live messages the
/// history held: one router's link may run behind another's.
pub const AFTER_END: Duration = Duration::from_secs(10);

/// What one joiner holds at most before it gives up holding and passes on
/// all it held (out of order with its history, but nothing lost).
pub const MAX_HELD_MESSAGES: usize = 1_000;
pub const MAX_HELD_BYTES: usize = 1 << 20;

/// A live message held for a joiner: from router link `link`.
#[derive(Clone, Debug)]
pub struct Held {
    pub link: usize,
    pub offset: Offset,
    pub message: Message,
}

enum Catchup {
    Awaiting { since: Instant, held: Vec<Held>, bytes: usize },
    Caught { upto: Offset, since: Instant },
}

/// What becomes of a live kept message for one member.
#[derive(Debug)]
pub enum Fate {
    /// Not joining, or joined and past its history: queue it.
    Pass,
    Hold,
    /// Its history held it already.
    Repeat,
    /// The joiner held too much: these (this message last) go out now.
    Overflow(Vec<Held>),
}

/// What the joiners hold and what they gave up, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CatchupCounts {
    pub held: u64,
    pub repeats: u64,
    pub abandoned: u64,
}

#[derive(Default)]
pub struct Catchups {
    channels: HashMap<String, HashMap<SessionId, Catchup>>,
    counts: CatchupCounts,
}

impl Catchups {
    /// KEPT_JOIN: `ids` wait for `channel`'s history.
    pub fn awaiting(&mut self, channel: &str, ids: &[SessionId], now: Instant) {
        let joiners = self.channels.entry(channel.to_owned()).or_default();
        for id in ids {
            joiners.insert(*id, Catchup::Awaiting { since: now, held: Vec::new(), bytes: 0 });
        }
    }

    /// Whether any session of `channel` is catching up: if not, its live
    /// messages go out as publishes do.
    pub fn any_in(&self, channel: &str) -> bool {
        self.channels.contains_key(channel)
    }

    /// What member `id` of `channel` does with a live message.
    pub fn offer(&mut self, channel: &str, id: &SessionId, held: Held) -> Fate {
        let Some(catchup) = self.channels.get_mut(channel).and_then(|joiners| joiners.get_mut(id)) else {
            return Fate::Pass;
        };
        match catchup {
            Catchup::Caught { upto, .. } if held.offset <= *upto => {
                self.counts.repeats += 1;
                Fate::Repeat
            }
            Catchup::Caught { .. } => Fate::Pass,
            Catchup::Awaiting { held: list, bytes, .. } => {
                *bytes += held.message.len();
                list.push(held);
                if list.len() <= MAX_HELD_MESSAGES && *bytes <= MAX_HELD_BYTES {
                    self.counts.held += 1;
                    return Fate::Hold;
                }
                let list = std::mem::take(list);
                self.forget(channel, id);
                self.counts.abandoned += 1;
                Fate::Overflow(list)
            }
        }
    }

    /// KEPT_END: the history `ids` got reached `upto`; what each held past
    /// it, in the order it came, to pass on now.
    pub fn ended(
        &mut self,
        channel: &str,
        ids: &[SessionId],
        upto: Offset,
        now: Instant,
    ) -> Vec<(SessionId, Vec<Held>)> {
        let Some(joiners) = self.channels.get_mut(channel) else { return Vec::new() };
        let mut release = Vec::new();
        for id in ids {
            let Some(catchup) = joiners.get_mut(id) else { continue };
            if let Catchup::Awaiting { held, .. } = std::mem::replace(catchup, Catchup::Caught { upto, since: now }) {
                let (after, repeats): (Vec<Held>, Vec<Held>) = held.into_iter().partition(|held| held.offset > upto);
                self.counts.repeats += repeats.len() as u64;
                release.push((*id, after));
            }
        }
        release
    }

    /// Joiners whose KEPT_END did not come within [`AWAIT_END`] pass on what
    /// they held; those past [`AFTER_END`] are done.
    pub fn sweep(&mut self, now: Instant) -> Vec<(SessionId, Vec<Held>)> {
        let mut release = Vec::new();
        for joiners in self.channels.values_mut() {
            joiners.retain(|id, catchup| match catchup {
                Catchup::Awaiting { since, held, .. } if now.duration_since(*since) >= AWAIT_END => {
                    release.push((*id, std::mem::take(held)));
                    false
                }
                Catchup::Caught { since, .. } => now.duration_since(*since) < AFTER_END,
                Catchup::Awaiting { .. } => true,
            });
        }
        self.counts.abandoned += release.len() as u64;
        self.channels.retain(|_, joiners| !joiners.is_empty());
        release
    }

    fn forget(&mut self, channel: &str, id: &SessionId) {
        if let Some(joiners) = self.channels.get_mut(channel) {
            joiners.remove(id);
            if joiners.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    pub fn counts(&self) -> CatchupCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::message::Payload;

    fn held(offset: u64) -> Held {
        let message = Message::new(Payload::new(bytes::Bytes::from(offset.to_string())), false);
        Held { link: 0, offset: Offset(offset, 0), message }
    }

    fn offsets(list: &[Held]) -> Vec<u64> {
        list.iter().map(|held| held.offset.0).collect()
    }

    fn id() -> SessionId {
        SessionId::from_u64(1)
    }

    #[test]
    fn a_joiner_holds_live_messages_and_passes_on_those_after_its_history() {
        let (mut catchups, now) = (Catchups::default(), Instant::now());
        assert!(matches!(catchups.offer("room", &id(), held(1)), Fate::Pass));
        catchups.awaiting("room", &[id()], now);
        assert!(catchups.any_in("room") && !catchups.any_in("other"));
        for offset in [4, 5, 6] {
            assert!(matches!(catchups.offer("room", &id(), held(offset)), Fate::Hold));
        }
        let released = catchups.ended("room", &[id()], Offset(5, 0), now);
        assert_eq!(released.iter().map(|(id, list)| (*id, offsets(list))).collect::<Vec<_>>(), [(id(), vec![6])]);
        assert!(
            matches!(catchups.offer("room", &id(), held(3)), Fate::Repeat),
            "a slow router's message the history held"
        );
        assert!(matches!(catchups.offer("room", &id(), held(7)), Fate::Pass));
        assert_eq!(catchups.counts(), CatchupCounts { held: 3, repeats: 3, abandoned: 0 });
        assert!(catchups.sweep(now + AFTER_END - Duration::from_millis(1)).is_empty());
        assert!(catchups.any_in("room"));
        catchups.sweep(now + AFTER_END);
        assert!(!catchups.any_in("room"));
    }

    #[test]
    fn a_joiner_whose_history_never_ends_passes_on_what_it_held() {
        let (mut catchups, now) = (Catchups::default(), Instant::now());
        catchups.awaiting("room", &[id()], now);
        catchups.offer("room", &id(), held(2));
        assert!(catchups.sweep(now + AWAIT_END - Duration::from_millis(1)).is_empty());
        let released = catchups.sweep(now + AWAIT_END);
        assert_eq!(released.iter().map(|(id, list)| (*id, offsets(list))).collect::<Vec<_>>(), [(id(), vec![2])]);
        assert!(!catchups.any_in("room"));
        assert_eq!(catchups.counts().abandoned, 1);
    }

    #[test]
    fn a_joiner_holds_within_its_bound() {
        let (mut catchups, now) = (Catchups::default(), Instant::now());
        catchups.awaiting("room", &[id()], now);
        for offset in 1..=MAX_HELD_MESSAGES as u64 {
            assert!(matches!(catchups.offer("room", &id(), held(offset)), Fate::Hold));
        }
        let Fate::Overflow(list) = catchups.offer("room", &id(), held(5_000)) else { panic!("held past the bound") };
        assert_eq!(list.len(), MAX_HELD_MESSAGES + 1);
        assert_eq!(list.last().unwrap().offset, Offset(5_000, 0));
        assert!(matches!(catchups.offer("room", &id(), held(5_001)), Fate::Pass));
        assert!(catchups.ended("room", &[id()], Offset(1, 0), now).is_empty());
    }
}
