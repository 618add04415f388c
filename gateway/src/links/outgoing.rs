//! One router link's outgoing side: what sessions report (starts, ends,
//! channel counts) and frames for the router, queued without waiting and
//! taken by the link's task in batches. Bounded: past `LINK_QUEUE` events
//! the link starts over with a full report.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protocol::{Frame, FrameKind, Interest, SessionId, MAX_IDS_PER_FRAME};
use tokio::sync::Notify;

use super::LinkStats;
use crate::session::memberships::ChannelCount;

/// Session starts and ends, and frames, queued per router link; past it
/// the link starts over.
const LINK_QUEUE: usize = 65_536;
/// Ended sessions kept per link to report on its next connection.
const MAX_UNREPORTED: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LinkEvent {
    Connected(SessionId),
    Closed(SessionId),
    Frame(Frame),
}

/// One link's outgoing side, shared by the sessions (which never wait on
/// it) and the link's task.
#[derive(Default)]
pub(super) struct Outgoing {
    pub(super) pending: Mutex<Pending>,
    pub(super) ready: Notify,
    /// The largest frame data the router takes, once its heartbeat said.
    pub(super) router_max_frame: AtomicUsize,
    pub(super) linked: AtomicBool,
}

#[derive(Default)]
pub(super) struct Pending {
    pub(super) events: VecDeque<LinkEvent>,
    /// Sessions that ended while their CLOSE could not go out: the next
    /// connection reports them, so the router forgets their memberships.
    pub(super) unreported: HashSet<SessionId>,
    /// Ends sent in a new connection's report, not yet known to have
    /// reached a live router: a stopped router's kernel takes the report
    /// all the same. They count as reported once the router is heard on
    /// that connection, and are unreported again if it ends first.
    pub(super) reporting: Vec<SessionId>,
    /// Channel counts not yet sent, the newest of each channel: a router
    /// keeps only the newest, so a burst of closes costs one each.
    pub(super) counts: HashMap<String, Interest>,
    /// The newest barrier to ask of the router, after the counts.
    pub(super) sync: Option<u64>,
    /// Set when the queue overflowed: the link starts over.
    pub(super) overflowed: bool,
    pub(super) open: bool,
}

impl Pending {
    /// An event the router will not get on this connection: a start is
    /// reported with all the others on the next, an end is kept for it.
    fn miss(&mut self, event: LinkEvent, stats: &LinkStats) {
        if let LinkEvent::Closed(id) = event {
            if self.unreported.len() < MAX_UNREPORTED {
                self.unreported.insert(id);
            } else {
                stats.closes_lost.fetch_add(1, Relaxed);
            }
        }
    }

    /// The connection is over: what it did not send is missed.
    pub(super) fn close(&mut self, stats: &LinkStats) {
        self.open = false;
        self.overflowed = false;
        self.unreported.extend(self.reporting.drain(..));
        self.counts = HashMap::new();
        self.sync = None;
        for event in std::mem::take(&mut self.events) {
            self.miss(event, stats);
        }
    }
}

impl Outgoing {
    /// Queues an event without waiting; one that does not fit is missed,
    /// and the link starts over.
    pub(super) fn queue(&self, event: LinkEvent, stats: &LinkStats) {
        let mut pending = self.pending.lock().unwrap();
        if !pending.open || pending.overflowed {
            return pending.miss(event, stats);
        }
        if pending.events.len() >= LINK_QUEUE {
            pending.overflowed = true;
            stats.overflows.fetch_add(1, Relaxed);
            pending.miss(event, stats);
        } else {
            pending.events.push_back(event);
        }
        drop(pending);
        self.ready.notify_one();
    }

    /// Queues a channel's count, in place of an older one not yet sent.
    pub(super) fn queue_count(&self, interest: Interest) {
        let mut pending = self.pending.lock().unwrap();
        if !pending.open {
            return;
        }
        match pending.counts.get_mut(interest.channel.as_str()) {
            Some(queued) if queued.version > interest.version => return,
            Some(queued) => *queued = interest,
            None => drop(pending.counts.insert(interest.channel.as_str().to_owned(), interest)),
        }
        drop(pending);
        self.ready.notify_one();
    }

    /// Asks the router to answer once it has applied what was queued
    /// before (a barrier: see `barriers`).
    pub(super) fn queue_sync(&self, barrier: u64) {
        let mut pending = self.pending.lock().unwrap();
        if !pending.open {
            return;
        }
        pending.sync = Some(pending.sync.unwrap_or(0).max(barrier));
        drop(pending);
        self.ready.notify_one();
    }

    /// Waits for events and takes them all, the channel counts after them
    /// and a barrier last; an error once the queue overflowed.
    pub(super) async fn take(&self) -> Result<VecDeque<LinkEvent>, &'static str> {
        loop {
            {
                let mut pending = self.pending.lock().unwrap();
                if pending.overflowed {
                    return Err("the link's queue overflowed: starting over");
                }
                if !pending.events.is_empty() || !pending.counts.is_empty() || pending.sync.is_some() {
                    let mut events = std::mem::take(&mut pending.events);
                    let counts = std::mem::take(&mut pending.counts).into_values();
                    events.extend(counts.map(|count| LinkEvent::Frame(count.to_frame())));
                    let sync = pending.sync.take().map(|barrier| protocol::Sync(barrier).to_frame(FrameKind::Sync));
                    events.extend(sync.map(LinkEvent::Frame));
                    return Ok(events);
                }
            }
            self.ready.notified().await;
        }
    }
}

/// Queues each count for every router but `but` (one that hears it
/// when its change is released), as CH_SUB or CH_UNSUB.
pub(super) fn tell_counts(links: &[Arc<Outgoing>], counts: &[ChannelCount], but: Option<usize>) {
    for count in counts {
        for (index, link) in links.iter().enumerate().filter(|(index, _)| Some(*index) != but) {
            link.queue_count(count.interest(index));
        }
    }
}

/// Closes a run of CONN or CLOSE ids into frames.
fn end_run(frames: &mut Vec<Frame>, kind: Option<FrameKind>, run: &mut Vec<SessionId>) {
    if let Some(kind) = kind {
        frames.extend(Frame::for_sessions(kind, &std::mem::take(run), Bytes::new(), false));
    }
}

/// Folds events into as few CONN/CLOSE frames as possible, keeping their order.
pub(super) fn batch(events: VecDeque<LinkEvent>) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut run: Vec<SessionId> = Vec::new();
    let mut run_kind = None;
    for event in events {
        let (kind, id) = match event {
            LinkEvent::Connected(id) => (FrameKind::Conn, id),
            LinkEvent::Closed(id) => (FrameKind::Close, id),
            LinkEvent::Frame(frame) => {
                end_run(&mut frames, run_kind.take(), &mut run);
                frames.push(frame);
                continue;
            }
        };
        if run_kind != Some(kind) || run.len() == MAX_IDS_PER_FRAME {
            end_run(&mut frames, run_kind, &mut run);
            run_kind = Some(kind);
        }
        run.push(id);
    }
    end_run(&mut frames, run_kind, &mut run);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::cmd::Channel;

    #[test]
    fn starts_and_ends_fold_into_as_few_frames_as_keep_their_order() {
        let id = SessionId::from_u64;
        let frame = Frame::new(FrameKind::Heartbeat, Bytes::new(), Bytes::new());
        let events = [
            LinkEvent::Connected(id(1)),
            LinkEvent::Connected(id(2)),
            LinkEvent::Closed(id(1)),
            LinkEvent::Frame(frame.clone()),
            LinkEvent::Closed(id(2)),
        ];
        let frames = batch(events.into_iter().collect());
        let shape: Vec<(Option<FrameKind>, usize)> =
            frames.iter().map(|f| (f.kind(), f.session_ids().unwrap().len())).collect();
        let expected = [(FrameKind::Conn, 2), (FrameKind::Close, 1), (FrameKind::Heartbeat, 0), (FrameKind::Close, 1)];
        assert_eq!(shape, expected.map(|(kind, n)| (Some(kind), n)));
        let many: VecDeque<LinkEvent> = (0..5000).map(|n| LinkEvent::Connected(id(n))).collect();
        let frames = batch(many);
        assert_eq!(frames.iter().map(|f| f.session_ids().unwrap().len()).collect::<Vec<_>>(), [MAX_IDS_PER_FRAME, 905]);
    }

    #[tokio::test]
    async fn of_a_channels_counts_not_yet_sent_only_the_newest_goes() {
        let outgoing = Outgoing::default();
        let count = |channel: &str, version: u64| Interest {
            channel: Channel::new(channel).unwrap(),
            members: version as u32,
            version,
            changes_seen: 0,
        };
        outgoing.queue_count(count("room", 1));
        assert!(outgoing.pending.lock().unwrap().counts.is_empty(), "nothing queues while the link is down");
        outgoing.pending.lock().unwrap().open = true;
        for version in [2, 4, 3] {
            outgoing.queue_count(count("room", version));
        }
        outgoing.queue_count(count("hall", 1));
        outgoing.queue(LinkEvent::Closed(SessionId::from_u64(1)), &LinkStats::default());
        let mut taken = Vec::from(outgoing.take().await.unwrap());
        assert_eq!(taken.remove(0), LinkEvent::Closed(SessionId::from_u64(1)), "counts go after the other events");
        taken.sort_by_key(|event| format!("{event:?}"));
        let frames = [count("hall", 1), count("room", 4)].map(|count| LinkEvent::Frame(count.to_frame()));
        assert_eq!(taken, frames);
    }
}
