use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use protocol::SessionId;

use tokio::sync::watch;
use tokio::time::Instant;

use super::close::CloseReason;
use super::mailbox::{Mailbox, Pushed};
use crate::front::message::Message;

/// Every live session on this gateway, by id, with its mailbox; and what
/// the router said they belong to, to tell it again after its store lost
/// its data.
pub struct Registry {
    sessions: Mutex<Sessions>,
    belongs: Mutex<HashMap<SessionId, Belongs>>,
    /// How many sessions there are, for those who wait for none (a drain).
    size: watch::Sender<usize>,
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<SessionId, Arc<Mailbox>>,
    /// Set by [`Registry::close_all`]: a session that registers later is
    /// closed at once (a connection that was mid-upgrade at a drain).
    closing: Option<CloseReason>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry { sessions: Mutex::default(), belongs: Mutex::default(), size: watch::Sender::new(0) }
    }
}

/// A session's channels and user, as the router last said.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Belongs {
    pub channels: Vec<String>,
    pub user: Option<String>,
}

impl Registry {
    pub fn insert(&self, id: SessionId, mailbox: Arc<Mailbox>) {
        let mut sessions = self.sessions.lock().unwrap();
        if let Some(reason) = sessions.closing {
            mailbox.close(reason);
        }
        sessions.by_id.insert(id, mailbox);
        self.size.send_replace(sessions.by_id.len());
    }

    pub fn remove(&self, id: &SessionId) {
        let mut sessions = self.sessions.lock().unwrap();
        sessions.by_id.remove(id);
        self.size.send_replace(sessions.by_id.len());
        self.belongs.lock().unwrap().remove(id);
    }

    /// Waits until no session is left, or `deadline`; whether none is.
    pub async fn until_empty(&self, deadline: tokio::time::Instant) -> bool {
        let mut size = self.size.subscribe();
        let empty = tokio::time::timeout_at(deadline, size.wait_for(|n| *n == 0)).await.is_ok();
        empty
    }

    pub fn outbox(&self, id: &SessionId) -> Option<Arc<Mailbox>> {
        self.sessions.lock().unwrap().by_id.get(id).cloned()
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
        let sessions = &self.sessions.lock().unwrap().by_id;
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
        if self.sessions.lock().unwrap().by_id.contains_key(&id) {
            self.belongs.lock().unwrap().entry(id).or_default().user = Some(user.to_owned());
        }
    }

    pub fn belongs(&self) -> Vec<(SessionId, Belongs)> {
        self.belongs.lock().unwrap().iter().map(|(id, b)| (*id, b.clone())).collect()
    }

    pub fn ids(&self) -> Vec<SessionId> {
        self.sessions.lock().unwrap().by_id.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().unwrap().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pushes from router link `link` to the named sessions that live
    /// here; returns how many took it.
    pub fn push(&self, link: usize, ids: &[SessionId], message: &Message) -> usize {
        let sessions = &self.sessions.lock().unwrap().by_id;
        ids.iter().filter_map(|id| sessions.get(id)).filter(|outbox| queue(outbox, link, message)).count()
    }

    pub fn push_all(&self, link: usize, message: &Message) -> usize {
        let sessions = &self.sessions.lock().unwrap().by_id;
        sessions.values().filter(|outbox| queue(outbox, link, message)).count()
    }

    /// Every session takes pushes from router link `link` again: it has
    /// just reported them all, so whatever it sends now is for them.
    pub fn accept_from_all(&self, link: usize) {
        for outbox in self.sessions.lock().unwrap().by_id.values() {
            outbox.accept_from(link, true);
        }
    }

    pub fn kick(&self, ids: &[SessionId]) {
        let sessions = &self.sessions.lock().unwrap().by_id;
        for outbox in ids.iter().filter_map(|id| sessions.get(id)) {
            outbox.close(CloseReason::Kicked);
        }
    }

    /// Asks every session to close (a drain before exit).
    /// Asks every session to close, and every one that registers from
    /// now on (a drain before exit).
    pub fn close_all(&self, reason: CloseReason) {
        let mut sessions = self.sessions.lock().unwrap();
        sessions.closing = Some(reason);
        for mailbox in sessions.by_id.values() {
            mailbox.close(reason);
        }
    }

    /// The heartbeat: closes sessions silent for `idle_timeout`, and pings
    /// the others so a live client answers and proves itself. One sweep
    /// over all sessions instead of a timer in each.
    pub fn heartbeat(&self, idle_timeout: std::time::Duration) {
        let now = Instant::now();
        for outbox in self.sessions.lock().unwrap().by_id.values().filter(|outbox| !outbox.is_parked()) {
            if outbox.silent_for(now) >= idle_timeout {
                outbox.close(CloseReason::IdleTimeout);
            } else {
                outbox.push(Message::Ping);
            }
        }
    }

    /// Sessions parked now, and the bytes they buffer.
    pub fn parked(&self) -> (usize, usize) {
        let sessions = &self.sessions.lock().unwrap().by_id;
        let parked = sessions.values().filter(|outbox| outbox.is_parked());
        parked.fold((0, 0), |(n, bytes), outbox| (n + 1, bytes + outbox.queued_bytes()))
    }

    pub fn queued_bytes(&self) -> usize {
        self.sessions.lock().unwrap().by_id.values().map(|outbox| outbox.queued_bytes()).sum()
    }
}

fn queue(outbox: &Mailbox, link: usize, message: &Message) -> bool {
    outbox.push_from(link, message.clone()) == Pushed::Queued
}
