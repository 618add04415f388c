//! Applies each backend connection's first command in the order the
//! connections were accepted.
//!
//! fooking's PHP client opens one connection per call, so `addChannel`
//! then `publish` arrive on two connections, as do two publishes in a row.
//! Handled concurrently, the second could be applied first. Ordering only
//! the first command keeps kept-alive clients (whose later commands are
//! ordered by their connection) free of the gate.
//!
//! A connection whose first command has been read holds every later one
//! back until that command is applied, however long the store takes: two
//! publishes in a row reach their members in that order. A connection
//! that has sent nothing holds the later ones back for [`MAX_WAIT`] after
//! its accept at most, so a silent or slow peer stops no one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// A connection that sends nothing holds the next one back this long at most.
const MAX_WAIT: Duration = Duration::from_millis(100);

pub struct ArrivalOrder {
    line: Mutex<Line>,
    /// Bumped whenever a connection leaves the line or starts applying.
    changed: watch::Sender<u64>,
}

/// The connections not done with their first command, by ticket.
#[derive(Default)]
struct Line {
    next_ticket: u64,
    /// Accepted, no command read yet: since when.
    silent: BTreeMap<u64, Instant>,
    /// Their first command read, not applied yet.
    applying: BTreeSet<u64>,
}

/// What a later connection waits for.
enum Ahead {
    Nothing,
    /// An earlier connection is applying its first command.
    Applying,
    /// An earlier connection has sent nothing yet: until then at most.
    Silent(Instant),
}

impl Line {
    fn ahead_of(&self, number: u64, now: Instant) -> Ahead {
        if self.applying.range(..number).next().is_some() {
            return Ahead::Applying;
        }
        // Accepted in order, so the latest silent one ahead waits longest.
        match self.silent.range(..number).next_back() {
            Some((_, since)) if *since + MAX_WAIT > now => Ahead::Silent(*since + MAX_WAIT),
            _ => Ahead::Nothing,
        }
    }
}

/// A connection's place in line, taken when it is accepted.
pub struct Ticket {
    number: u64,
    order: Arc<ArrivalOrder>,
    done: bool,
}

impl Default for ArrivalOrder {
    fn default() -> Self {
        ArrivalOrder { line: Mutex::default(), changed: watch::Sender::new(0) }
    }
}

impl ArrivalOrder {
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        let mut line = self.line.lock().unwrap();
        let number = line.next_ticket;
        line.next_ticket += 1;
        line.silent.insert(number, Instant::now());
        Ticket { number, order: self.clone(), done: false }
    }

    fn changed(&self) {
        self.changed.send_modify(|version| *version += 1);
    }
}

impl Ticket {
    /// Its first command is read: waits until every earlier connection
    /// applied its own, or sent none within [`MAX_WAIT`] of its accept.
    pub async fn wait_turn(&self) {
        let mut changes = self.order.changed.subscribe();
        {
            let mut line = self.order.line.lock().unwrap();
            line.silent.remove(&self.number);
            line.applying.insert(self.number);
        }
        self.order.changed();
        loop {
            let ahead = self.order.line.lock().unwrap().ahead_of(self.number, Instant::now());
            match ahead {
                Ahead::Nothing => return,
                Ahead::Applying => _ = changes.changed().await,
                Ahead::Silent(until) => _ = tokio::time::timeout_at(until, changes.changed()).await,
            }
        }
    }

    /// Lets the next connection go.
    pub fn done(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if !self.done {
            self.done = true;
            let mut line = self.order.line.lock().unwrap();
            line.silent.remove(&self.number);
            line.applying.remove(&self.number);
            drop(line);
            self.order.changed();
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

    #[tokio::test(start_paused = true)]
    async fn a_command_being_applied_holds_the_next_however_long_it_takes() {
        let order = Arc::new(ArrivalOrder::default());
        let (first, second) = (order.ticket(), order.ticket());
        first.wait_turn().await;
        let started = Instant::now();
        let waiter = tokio::spawn(async move {
            second.wait_turn().await;
            Instant::now()
        });
        tokio::time::sleep(MAX_WAIT * 20).await;
        assert!(!waiter.is_finished(), "no escape while the first is applied");
        first.done();
        assert!(waiter.await.unwrap() >= started + MAX_WAIT * 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_holds_the_line_only_briefly() {
        let order = Arc::new(ArrivalOrder::default());
        let _silent = order.ticket();
        let next = order.ticket();
        let started = Instant::now();
        next.wait_turn().await;
        assert!(started.elapsed() >= MAX_WAIT && started.elapsed() < MAX_WAIT * 2);
        next.done();
        let _long_silent = order.ticket();
        tokio::time::sleep(MAX_WAIT * 3).await;
        let later = order.ticket();
        let started = Instant::now();
        later.wait_turn().await;
        assert!(started.elapsed() < MAX_WAIT, "a silence past its wait holds no one");
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_first_command_is_waited_for_by_those_after_it() {
        let order = Arc::new(ArrivalOrder::default());
        let (late, next) = (order.ticket(), order.ticket());
        tokio::time::sleep(MAX_WAIT * 2).await;
        late.wait_turn().await;
        let waiter = tokio::spawn(async move { next.wait_turn().await });
        tokio::time::sleep(MAX_WAIT * 5).await;
        assert!(!waiter.is_finished(), "its command is read, so it goes first");
        drop(late);
        waiter.await.unwrap();
    }
}
