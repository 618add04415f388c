//! The changes a router made here (its CH_ADD and CH_DEL) that it may not
//! be told of yet: each waits until every other linked router has taken
//! the channel's new count (their SYNCED answered the SYNC sent after it),
//! or [`BARRIER_WAIT`] passes. So once a join through one router has
//! answered, a publish through any other reaches the new member, and no
//! router reads the store to learn where members joined. No I/O here, and
//! time is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use protocol::cmd::Channel;

/// How long a change waits for the other routers at most: past it, a
/// stuck router no longer holds the others' joins (it is cut off within
/// three heartbeats anyway).
pub const BARRIER_WAIT: Duration = Duration::from_secs(1);

/// A change the router on `link` may be told of now: that router's first
/// `upto` changes are applied here and known to every other router, the
/// last of them to `channel`.
#[derive(Debug, PartialEq, Eq)]
pub struct Release {
    pub link: usize,
    pub upto: u64,
    pub channel: Channel,
}

struct Waiting {
    barrier: u64,
    upto: u64,
    channel: Channel,
    since: Instant,
}

pub struct Barriers {
    last: u64,
    /// Per link: the highest barrier its router answered.
    synced: Vec<u64>,
    /// Per link: its changes not yet told, oldest first.
    waiting: Vec<VecDeque<Waiting>>,
}

impl Barriers {
    /// For a gateway with `links` router links.
    pub fn new(links: usize) -> Barriers {
        Barriers { last: 0, synced: vec![0; links], waiting: (0..links).map(|_| VecDeque::new()).collect() }
    }

    /// The router on `link` made its `upto`th change, to `channel`, which
    /// `others` (the other linked routers) must take first: the barrier
    /// to ask them for, or `None` if there is no one to wait for (told at
    /// once).
    pub fn changed(&mut self, link: usize, upto: u64, channel: Channel, others: usize, now: Instant) -> Option<u64> {
        if others == 0 {
            return None;
        }
        self.last += 1;
        self.waiting[link].push_back(Waiting { barrier: self.last, upto, channel, since: now });
        Some(self.last)
    }

    /// The router on `link` answered up to `barrier`.
    pub fn synced(&mut self, link: usize, barrier: u64) {
        self.synced[link] = self.synced[link].max(barrier.min(self.last));
    }

    /// The router on `link` linked again: its changes here are over (it is
    /// told every count afresh), and it takes every count before anything
    /// else on the new link, so no earlier barrier waits for it.
    pub fn relinked(&mut self, link: usize) {
        self.waiting[link].clear();
        self.synced[link] = self.last;
    }

    /// What may be told now: the oldest changes of each link whose barrier
    /// every router linked now (`linked(link)`) answered, or that waited
    /// [`BARRIER_WAIT`]; the newest of each link's run.
    pub fn releases(&mut self, linked: impl Fn(usize) -> bool, now: Instant) -> Vec<Release> {
        let mut released = Vec::new();
        for link in 0..self.waiting.len() {
            let mut last = None;
            while let Some(head) = self.waiting[link].front() {
                let answered = (0..self.synced.len())
                    .filter(|other| *other != link && linked(*other))
                    .all(|other| self.synced[other] >= head.barrier);
                if !answered && now.duration_since(head.since) < BARRIER_WAIT {
                    break;
                }
                last = self.waiting[link].pop_front();
            }
            if let Some(Waiting { upto, channel, .. }) = last {
                released.push(Release { link, upto, channel });
            }
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> Channel {
        Channel::new("room").unwrap()
    }

    #[test]
    fn a_change_is_told_once_every_other_linked_router_has_its_count() {
        let mut barriers = Barriers::new(3);
        let now = Instant::now();
        assert_eq!(barriers.changed(0, 1, room(), 0, now), None, "alone: told at once");
        let first = barriers.changed(0, 2, room(), 2, now).unwrap();
        let second = barriers.changed(0, 3, room(), 2, now).unwrap();
        let all = |_| true;
        assert!(barriers.releases(all, now).is_empty(), "nobody answered");
        barriers.synced(1, first);
        assert!(barriers.releases(all, now).is_empty(), "router 2 has not");
        assert!(!barriers.releases(|link| link != 2, now).is_empty(), "unless router 2 is not linked");
        barriers.synced(1, second);
        barriers.synced(2, second);
        assert_eq!(barriers.releases(all, now), [Release { link: 0, upto: 3, channel: room() }], "the run's newest");
        assert!(barriers.releases(all, now).is_empty(), "told once");
    }

    #[test]
    fn a_stuck_router_holds_the_others_no_longer_than_the_wait() {
        let mut barriers = Barriers::new(2);
        let start = Instant::now();
        barriers.changed(1, 4, room(), 1, start).unwrap();
        assert!(barriers.releases(|_| true, start + BARRIER_WAIT / 2).is_empty());
        assert_eq!(barriers.releases(|_| true, start + BARRIER_WAIT).len(), 1);
        barriers.changed(1, 5, room(), 1, start).unwrap();
        barriers.relinked(1);
        assert!(barriers.releases(|_| true, start + BARRIER_WAIT).is_empty(), "a router that linked again starts over");
    }
}
