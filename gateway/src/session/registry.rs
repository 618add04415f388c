use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use protocol::SessionId;
use tokio_tungstenite::tungstenite::Message;

use tokio::time::Instant;

use super::close::CloseReason;
use super::outbox::{Outbox, Pushed};

/// Every live session on this gateway, by id, with its outbox; and what
/// the router said they belong to, to tell it again after its store lost
/// its data.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<SessionId, Arc<Outbox>>>,
    belongs: Mutex<HashMap<SessionId, Belongs>>,
}

/// A session's channels and user, as the router last said.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Belongs {
    pub channels: Vec<String>,
    pub user: Option<String>,
}

impl Registry {
    pub fn insert(&self, id: SessionId, outbox: Arc<Outbox>) {
        self.sessions.lock().unwrap().insert(id, outbox);
    }

    pub fn remove(&self, id: &SessionId) {
        self.sessions.lock().unwrap().remove(id);
        self.belongs.lock().unwrap().remove(id);
    }

    pub fn outbox(&self, id: &SessionId) -> Option<Arc<Outbox>> {
        self.sessions.lock().unwrap().get(id).cloned()
    }

    pub fn belongs_of(&self, id: &SessionId) -> Belongs {
        self.belongs.lock().unwrap().get(id).cloned().unwrap_or_default()
    }

    /// What a session brought along from another gateway.
    pub fn set_belongs(&self, id: SessionId, belongs: Belongs) {
        self.belongs.lock().unwrap().insert(id, belongs);
    }

    /// Records joins (`joined`) or leaves of `channel` by the sessions that live here.
    pub fn note_channel(&self, ids: &[SessionId], channel: &str, joined: bool) {
        let sessions = self.sessions.lock().unwrap();
        let mut belongs = self.belongs.lock().unwrap();
        for id in ids.iter().filter(|id| sessions.contains_key(id)) {
            let entry = belongs.entry(*id).or_default();
            entry.channels.retain(|c| c != channel);
            if joined {
                entry.channels.push(channel.to_owned());
            }
        }
    }

    pub fn note_user(&self, id: SessionId, user: &str) {
        if self.sessions.lock().unwrap().contains_key(&id) {
            self.belongs.lock().unwrap().entry(id).or_default().user = Some(user.to_owned());
        }
    }

    pub fn belongs(&self) -> Vec<(SessionId, Belongs)> {
        self.belongs.lock().unwrap().iter().map(|(id, b)| (*id, b.clone())).collect()
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

    /// Pushes from router link `link` to the named sessions that live
    /// here; returns how many took it.
    pub fn push(&self, link: usize, ids: &[SessionId], message: &Message) -> usize {
        let sessions = self.sessions.lock().unwrap();
        ids.iter().filter_map(|id| sessions.get(id)).filter(|outbox| queue(outbox, link, message)).count()
    }

    pub fn push_all(&self, link: usize, message: &Message) -> usize {
        let sessions = self.sessions.lock().unwrap();
        sessions.values().filter(|outbox| queue(outbox, link, message)).count()
    }

    /// Every session takes pushes from router link `link` again: it has
    /// just reported them all, so whatever it sends now is for them.
    pub fn accept_from_all(&self, link: usize) {
        for outbox in self.sessions.lock().unwrap().values() {
            outbox.accept_from(link, true);
        }
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
        for outbox in self.sessions.lock().unwrap().values().filter(|outbox| !outbox.is_parked()) {
            if outbox.silent_for(now) >= idle_timeout {
                outbox.close(CloseReason::IdleTimeout);
            } else {
                outbox.push(Message::Ping(Default::default()));
            }
        }
    }

    /// Sessions parked now, and the bytes they buffer.
    pub fn parked(&self) -> (usize, usize) {
        let sessions = self.sessions.lock().unwrap();
        let parked = sessions.values().filter(|outbox| outbox.is_parked());
        parked.fold((0, 0), |(n, bytes), outbox| (n + 1, bytes + outbox.queued_bytes()))
    }

    pub fn queued_bytes(&self) -> usize {
        self.sessions.lock().unwrap().values().map(|outbox| outbox.queued_bytes()).sum()
    }
}

fn queue(outbox: &Outbox, link: usize, message: &Message) -> bool {
    outbox.push_from(link, message.clone()) == Pushed::Queued
}
