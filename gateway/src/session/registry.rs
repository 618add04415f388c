use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use router::protocol::SessionId;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Close codes the gateway chooses by itself.
pub mod close_code {
    /// The router kicked the session.
    pub const KICKED: u16 = 4000;
    /// The client did not read its pushes fast enough.
    pub const SLOW_CONSUMER: u16 = 1008;
}

/// The registry's end of a session: its push queue, and where to leave a
/// close code. Removing the handle drops the queue's only sender, which
/// wakes the session to read the code: no extra wake-up machinery.
pub struct SessionHandle {
    pub outbound: mpsc::Sender<Message>,
    pub close_code: Arc<AtomicU16>,
}

enum Pushed {
    Queued,
    /// A full queue means a slow consumer: it is closed rather than allowed
    /// to grow without bound or stall the others.
    Overflowed,
    Gone,
}

impl SessionHandle {
    fn push(&self, message: Message) -> Pushed {
        match self.outbound.try_send(message) {
            Ok(()) => Pushed::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Pushed::Overflowed,
            Err(mpsc::error::TrySendError::Closed(_)) => Pushed::Gone,
        }
    }
}

/// Every live session on this gateway, by id.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<SessionId, SessionHandle>>,
}

impl Registry {
    pub fn insert(&self, id: SessionId, handle: SessionHandle) {
        self.sessions.lock().unwrap().insert(id, handle);
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
        let mut sessions = self.sessions.lock().unwrap();
        let targets = ids.iter().filter_map(|id| Some((*id, sessions.get(id)?)));
        let (queued, overflowed) = push_each(targets, message);
        close_all(&mut sessions, &overflowed, close_code::SLOW_CONSUMER);
        queued
    }

    pub fn push_all(&self, message: &Message) -> usize {
        let mut sessions = self.sessions.lock().unwrap();
        let (queued, overflowed) = push_each(sessions.iter().map(|(id, s)| (*id, s)), message);
        close_all(&mut sessions, &overflowed, close_code::SLOW_CONSUMER);
        queued
    }

    pub fn kick(&self, ids: &[SessionId]) {
        close_all(&mut self.sessions.lock().unwrap(), ids, close_code::KICKED);
    }
}

/// Queues `message` for each target; returns how many took it and which overflowed.
fn push_each<'a>(
    targets: impl Iterator<Item = (SessionId, &'a SessionHandle)>,
    message: &Message,
) -> (usize, Vec<SessionId>) {
    let mut queued = 0;
    let mut overflowed = Vec::new();
    for (id, session) in targets {
        match session.push(message.clone()) {
            Pushed::Queued => queued += 1,
            Pushed::Overflowed => overflowed.push(id),
            Pushed::Gone => {}
        }
    }
    (queued, overflowed)
}

/// Leaves the close code and drops each session's queue sender.
fn close_all(sessions: &mut HashMap<SessionId, SessionHandle>, ids: &[SessionId], code: u16) {
    for id in ids {
        if let Some(session) = sessions.remove(id) {
            session.close_code.store(code, Ordering::Release);
        }
    }
}
