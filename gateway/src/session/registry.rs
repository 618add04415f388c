use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use router::protocol::SessionId;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Message;

/// Close codes the gateway chooses by itself.
pub mod close_code {
    /// The router kicked the session.
    pub const KICKED: u16 = 4000;
    /// The client did not read its pushes fast enough.
    pub const SLOW_CONSUMER: u16 = 1008;
}

/// Asks a session to close from outside its task (kick, slow consumer).
#[derive(Default)]
pub struct CloseRequest {
    code: AtomicU16,
    notify: Notify,
}

impl CloseRequest {
    pub fn request(&self, code: u16) {
        let _ = self.code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.notify.notify_one();
    }

    /// Waits until a close is requested; returns its code.
    pub async fn requested(&self) -> u16 {
        self.notify.notified().await;
        self.code.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
pub struct SessionHandle {
    pub outbound: mpsc::Sender<Message>,
    pub close: Arc<CloseRequest>,
}

impl SessionHandle {
    /// Queues a push; a full queue means a slow consumer, which is closed
    /// rather than allowed to grow without bound or stall the others.
    fn push(&self, message: Message) -> bool {
        match self.outbound.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close.request(close_code::SLOW_CONSUMER);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
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
        let sessions = self.sessions.lock().unwrap();
        ids.iter().filter_map(|id| sessions.get(id)).filter(|s| s.push(message.clone())).count()
    }

    pub fn push_all(&self, message: &Message) -> usize {
        let sessions = self.sessions.lock().unwrap();
        sessions.values().filter(|s| s.push(message.clone())).count()
    }

    pub fn kick(&self, ids: &[SessionId]) {
        let sessions = self.sessions.lock().unwrap();
        for session in ids.iter().filter_map(|id| sessions.get(id)) {
            session.close.request(close_code::KICKED);
        }
    }
}
