//! Applies each backend connection's first command in the order the
//! connections were accepted.
//!
//! fooking's PHP client opens one connection per call, so `addChannel`
//! then `publish` arrive on two connections. Handled concurrently, the
//! publish could be applied first and miss the new member. Ordering only
//! the first command keeps kept-alive clients (whose later commands are
//! ordered by their connection) free of the gate.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// A connection that sends nothing holds the next one back this long at most.
const MAX_WAIT: Duration = Duration::from_millis(100);

pub struct ArrivalOrder {
    next_ticket: std::sync::atomic::AtomicU64,
    applied: watch::Sender<u64>,
}

/// A connection's place in line, taken when it is accepted.
pub struct Ticket {
    number: u64,
    order: Arc<ArrivalOrder>,
    done: bool,
}

impl Default for ArrivalOrder {
    fn default() -> Self {
        ArrivalOrder { next_ticket: 0.into(), applied: watch::Sender::new(0) }
    }
}

impl ArrivalOrder {
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        let number = self.next_ticket.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ticket { number, order: self.clone(), done: false }
    }
}

impl Ticket {
    /// Waits until every earlier connection applied its first command (or
    /// stopped holding the line).
    pub async fn wait_turn(&self) {
        let mut applied = self.order.applied.subscribe();
        let _ = tokio::time::timeout(MAX_WAIT, applied.wait_for(|n| *n >= self.number)).await;
    }

    /// Lets the next connection go.
    pub fn done(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if !self.done {
            self.done = true;
            let next = self.number + 1;
            self.order.applied.send_if_modified(|n| {
                let advance = *n < next;
                *n = (*n).max(next);
                advance
            });
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn later_tickets_wait_for_earlier_ones() {
        let order = Arc::new(ArrivalOrder::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let first = order.ticket();
        let second = order.ticket();
        let l = log.clone();
        let waiter = tokio::spawn(async move {
            second.wait_turn().await;
            l.lock().unwrap().push(2);
            second.done();
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        log.lock().unwrap().push(1);
        first.done();
        waiter.await.unwrap();
        assert_eq!(*log.lock().unwrap(), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_silent_connection_holds_the_line_only_briefly() {
        let order = Arc::new(ArrivalOrder::default());
        let _silent = order.ticket();
        let next = order.ticket();
        let started = tokio::time::Instant::now();
        next.wait_turn().await;
        assert!(started.elapsed() >= MAX_WAIT && started.elapsed() < MAX_WAIT * 5);
    }
}
