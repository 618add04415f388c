use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use router::protocol::SessionId;
use tokio_tungstenite::tungstenite::Message;

use tokio::time::Instant;

use super::close::CloseReason;
use super::outbox::{Outbox, Pushed};

/// Every live session on this gateway, by id, with its outbox.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<SessionId, Arc<Outbox>>>,
}

impl Registry {
    pub fn insert(&self, id: SessionId, outbox: Arc<Outbox>) {
        self.sessions.lock().unwrap().insert(id, outbox);
    }

    pub fn remove(&self, id: &SessionId) {
        self.sessions.lock().unwrap().remove(id);
    }

    pub fn ids(&self) -> Vec<SessionId> {
        self.sessions.lock().unwrap().keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pushes to the named sessions that live here; returns how many took it.
    pub fn push(&self, ids: &[SessionId], message: &Message) -> usize {
        let sessions = self.sessions.lock().unwrap();
        ids.iter().filter_map(|id| sessions.get(id)).filter(|outbox| queue(outbox, message)).count()
    }

    pub fn push_all(&self, message: &Message) -> usize {
        let sessions = self.sessions.lock().unwrap();
        sessions.values().filter(|outbox| queue(outbox, message)).count()
    }

    pub fn kick(&self, ids: &[SessionId]) {
        let sessions = self.sessions.lock().unwrap();
        for outbox in ids.iter().filter_map(|id| sessions.get(id)) {
            outbox.close(CloseReason::Kicked);
        }
    }

    /// Asks every session to close (a drain before exit).
    pub fn close_all(&self, reason: CloseReason) {
        for outbox in self.sessions.lock().unwrap().values() {
            outbox.close(reason);
        }
    }

    /// The heartbeat: closes sessions silent for `idle_timeout`, and pings
    /// the others so a live client answers and proves itself. One sweep
    /// over all sessions instead of a timer in each.
    pub fn heartbeat(&self, idle_timeout: std::time::Duration) {
        let now = Instant::now();
        for outbox in self.sessions.lock().unwrap().values() {
            if outbox.silent_for(now) >= idle_timeout {
                outbox.close(CloseReason::IdleTimeout);
            } else {
                outbox.push(Message::Ping(Default::default()));
            }
        }
    }

    pub fn queued_bytes(&self) -> usize {
        self.sessions.lock().unwrap().values().map(|outbox| outbox.queued_bytes()).sum()
    }
}

fn queue(outbox: &Outbox, message: &Message) -> bool {
    outbox.push(message.clone()) == Pushed::Queued
}
