//! The changes a router made here (its CH_ADD and CH_DEL) that it may not
//! be told of yet: each waits until every other linked router has taken
//! the channel's new count (their SYNCED answered the SYNC sent after it),
//! or [`BARRIER_WAIT`] passes. So once a join through one router has
//! answered, a publish through any other reaches the new member, and no
//! router reads the store to learn where members joined. Only a change
//! that gives the channel its first member here asks for a barrier: the
//! others already route a channel with members here to it, and a leave
//! takes effect here at once; they wait only behind earlier changes. A
//! change made here (a client's own join) asks every router for a barrier
//! the same way, and the client hears it joined once all answered. No
//! I/O here, and time is passed in.

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

/// A router's change applied here: its `upto`th, to `channel`.
pub struct Changed {
    pub upto: u64,
    pub channel: Channel,
    /// The channel's first member here: the other routers must route it.
    pub new_route: bool,
}

/// What becomes of a change.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Tell its router now.
    Told,
    /// Ask the other routers for this barrier (SYNC); tell once they answer.
    Ask(u64),
    /// Tell it with the changes before it, once those are.
    Queued,
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
    /// routes it here anew (`new_route`: its first member here) or not,
    /// with `others` other routers linked: whether it is told at once,
    /// after the changes before it, or once the others answer a barrier.
    pub fn changed(&mut self, link: usize, change: Changed, others: usize, now: Instant) -> Change {
        let Changed { upto, channel, new_route } = change;
        let behind = self.waiting[link].back().map(|waiting| waiting.barrier);
        let barrier = match (others, new_route, behind) {
            (0, ..) | (_, false, None) => return Change::Told,
            (_, false, Some(barrier)) => barrier,
            (_, true, _) => {
                self.last += 1;
                self.last
            }
        };
        self.waiting[link].push_back(Waiting { barrier, upto, channel, since: now });
        match new_route {
            true => Change::Ask(barrier),
            false => Change::Queued,
        }
    }

    /// A barrier for a change made here (a client's own join), after the
    /// counts queued on every link so far.
    pub fn ask_all(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    /// Whether every router linked now (`linked(link)`) answered `barrier`.
    pub fn answered(&self, barrier: u64, linked: impl Fn(usize) -> bool) -> bool {
        (0..self.synced.len()).filter(|link| linked(*link)).all(|link| self.synced[link] >= barrier)
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

    fn change(upto: u64, new_route: bool) -> Changed {
        Changed { upto, channel: room(), new_route }
    }

    /// Link 0's `upto`th change, a new route: the barrier it asks for.
    fn asks(barriers: &mut Barriers, upto: u64, others: usize, now: Instant) -> u64 {
        match barriers.changed(0, change(upto, true), others, now) {
            Change::Ask(barrier) => barrier,
            other => panic!("a new route asks, not {other:?}"),
        }
    }

    #[test]
    fn a_change_that_routes_nothing_new_waits_only_behind_earlier_ones() {
        let mut barriers = Barriers::new(2);
        let now = Instant::now();
        assert_eq!(barriers.changed(0, change(1, false), 1, now), Change::Told, "nothing before it");
        let first = asks(&mut barriers, 2, 1, now);
        assert_eq!(barriers.changed(0, change(3, false), 1, now), Change::Queued, "behind the new route");
        assert!(barriers.releases(|_| true, now).is_empty(), "neither before the answer");
        barriers.synced(1, first);
        assert_eq!(barriers.releases(|_| true, now), [Release { link: 0, upto: 3, channel: room() }], "both at once");
        assert_eq!(barriers.changed(0, change(4, false), 1, now), Change::Told, "nothing waits any more");
    }

    #[test]
    fn a_change_is_told_once_every_other_linked_router_has_its_count() {
        let mut barriers = Barriers::new(3);
        let now = Instant::now();
        assert_eq!(barriers.changed(0, change(1, true), 0, now), Change::Told, "alone: told at once");
        let (first, second) = (asks(&mut barriers, 2, 2, now), asks(&mut barriers, 3, 2, now));
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
    fn a_change_made_here_is_answered_once_every_linked_router_answered() {
        let mut barriers = Barriers::new(2);
        let barrier = barriers.ask_all();
        assert!(!barriers.answered(barrier, |_| true));
        barriers.synced(0, barrier);
        assert!(!barriers.answered(barrier, |_| true), "router 1 has not");
        assert!(barriers.answered(barrier, |link| link == 0), "unless it is not linked");
        barriers.relinked(1);
        assert!(barriers.answered(barrier, |_| true), "a router that linked again takes every count first");
    }

    #[test]
    fn a_stuck_router_holds_the_others_no_longer_than_the_wait() {
        let mut barriers = Barriers::new(2);
        let start = Instant::now();
        barriers.changed(1, change(4, true), 1, start);
        assert!(barriers.releases(|_| true, start + BARRIER_WAIT / 2).is_empty());
        assert_eq!(barriers.releases(|_| true, start + BARRIER_WAIT).len(), 1);
        barriers.changed(1, change(5, true), 1, start);
        barriers.relinked(1);
        assert!(barriers.releases(|_| true, start + BARRIER_WAIT).is_empty(), "a router that linked again starts over");
    }
}
