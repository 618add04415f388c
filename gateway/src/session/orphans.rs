//! A dead gateway's sessions, whose close events this gateway sends for
//! it when a router asks (ORPHANED): queued within a bound and sent at a
//! steady rate. A gateway that dies takes its sessions' close events with
//! it, and some gateway must send them; but a link that announces
//! sessions it never had and leaves must not turn into a flood of backend
//! requests, whatever it announced.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use protocol::SessionId;
use tokio::sync::Notify;

use super::Host;

/// Sessions waiting for their close event, at most; more are dropped.
pub const MAX_QUEUED: usize = 1_000_000;
/// Close events sent a second, at most.
pub const PER_SECOND: usize = 1_000;
/// How often a share of them goes.
const TICK: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct Orphans {
    queue: Mutex<VecDeque<SessionId>>,
    ready: Notify,
}

impl Orphans {
    /// Queues the sessions; how many did not fit and were dropped.
    pub fn push(&self, ids: Vec<SessionId>) -> usize {
        let mut queue = self.queue.lock().unwrap();
        let room = MAX_QUEUED.saturating_sub(queue.len());
        let dropped = ids.len().saturating_sub(room);
        queue.extend(ids.into_iter().take(room));
        drop(queue);
        self.ready.notify_one();
        dropped
    }

    /// Sessions waiting now.
    pub fn len(&self) -> usize {
        self.queue.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next share to send: a tick's worth at most.
    fn take(&self) -> Vec<SessionId> {
        let mut queue = self.queue.lock().unwrap();
        let n = queue.len().min(PER_SECOND * TICK.as_millis() as usize / 1000);
        queue.drain(..n).collect()
    }

    /// Sends the queued close events, a tick's share at a time, for ever.
    pub async fn send(&self, host: &dyn Host) {
        let mut ticks = tokio::time::interval(TICK);
        loop {
            let share = self.take();
            if share.is_empty() {
                self.ready.notified().await;
                continue;
            }
            tracing::info!(
                sessions = share.len(),
                left = self.len(),
                "sending close events for a dead gateway's sessions"
            );
            super::event::send_close_events(host, share).await;
            ticks.tick().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_keeps_its_bound_and_gives_a_ticks_share() {
        let orphans = Orphans::default();
        assert_eq!(orphans.push((0..MAX_QUEUED as u64 + 5).map(SessionId::from_u64).collect()), 5);
        assert_eq!(orphans.push(vec![SessionId::from_u64(1)]), 1, "full");
        let share = orphans.take();
        assert_eq!(share.len(), PER_SECOND / 10);
        assert_eq!(share[0], SessionId::from_u64(0), "the first queued first");
        assert_eq!(orphans.len(), MAX_QUEUED - PER_SECOND / 10);
    }
}
