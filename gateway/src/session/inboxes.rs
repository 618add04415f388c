//! Where a client's messages go when they come by requests of their own,
//! not on the session's connection: an SSE client posts each one. Only
//! such sessions have an inbox, so a WebSocket session pays nothing here.

use std::sync::Mutex;

use protocol::SessionId;
use tokio::sync::mpsc;

use super::registry::IdMap;
use crate::base::transport::Incoming;

/// Messages a session's inbox holds before a post waits for room.
pub const INBOX_MESSAGES: usize = 16;

/// A posted message, boxed: a channel keeps room for 32 of what it
/// carries from the start, and an idle SSE session should not pay for 32
/// messages it has not been sent.
pub type Posted = Box<Incoming>;

/// One connection's inbox: what was posted to its session.
pub struct Inbox {
    id: SessionId,
    pub receiver: mpsc::Receiver<Posted>,
    /// Tells this inbox from a later connection's of the same session.
    sender: mpsc::Sender<Posted>,
}

impl Inbox {
    pub fn id(&self) -> SessionId {
        self.id
    }
}

#[derive(Default)]
pub struct Inboxes {
    by_session: Mutex<IdMap<mpsc::Sender<Posted>>>,
}

impl Inboxes {
    /// A new inbox for `id`'s connection, in place of an earlier
    /// connection's (a resume): what it sends the session reads.
    pub fn open(&self, id: SessionId) -> Inbox {
        let (sender, receiver) = mpsc::channel(INBOX_MESSAGES);
        self.by_session.lock().expect("not poisoned").insert(id, sender.clone());
        Inbox { id, receiver, sender }
    }

    /// Drops `inbox` if it is still its session's, not a later connection's.
    pub fn close(&self, inbox: &Inbox) {
        let mut by_session = self.by_session.lock().expect("not poisoned");
        if by_session.get(&inbox.id).is_some_and(|sender| sender.same_channel(&inbox.sender)) {
            by_session.remove(&inbox.id);
        }
    }

    /// Where to send `id`'s messages, if its connection is here.
    pub fn get(&self, id: SessionId) -> Option<mpsc::Sender<Posted>> {
        self.by_session.lock().expect("not poisoned").get(&id).cloned()
    }

    /// Connections with an inbox now.
    pub fn count(&self) -> usize {
        self.by_session.lock().expect("not poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_resumed_connection_takes_the_inbox_and_the_old_one_cannot_drop_it() {
        let inboxes = Inboxes::default();
        let id: SessionId = "00000000000000aa".parse().unwrap();
        let old = inboxes.open(id);
        let mut new = inboxes.open(id);
        inboxes.get(id).unwrap().send(Box::new(Incoming::Control)).await.unwrap();
        assert!(matches!(new.receiver.try_recv().as_deref(), Ok(Incoming::Control)), "posts reach the newest");
        inboxes.close(&old);
        assert_eq!(inboxes.count(), 1, "the old connection's end leaves the new one's inbox");
        inboxes.close(&new);
        assert!(inboxes.get(id).is_none() && inboxes.count() == 0);
    }
}
