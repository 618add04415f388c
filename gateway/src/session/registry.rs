use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use router::protocol::SessionId;
use tokio_tungstenite::tungstenite::Message;

use super::outbox::{Outbox, Pushed};

/// Close codes the gateway chooses by itself.
pub mod close_code {
    /// The router kicked the session.
    pub const KICKED: u16 = 4000;
    /// The client did not read its pushes fast enough.
    pub const SLOW_CONSUMER: u16 = 1008;
}

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
            outbox.close(close_code::KICKED);
        }
    }
}

fn queue(outbox: &Outbox, message: &Message) -> bool {
    outbox.push(message.clone(), close_code::SLOW_CONSUMER) == Pushed::Queued
}
