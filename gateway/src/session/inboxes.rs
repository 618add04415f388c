//! Where a client's messages go when they come by requests of their own,
//! not on the session's connection: an SSE client posts each one. Only
//! such sessions have an inbox, so a WebSocket session pays nothing here.
//!
//! An inbox holds a few messages, and bytes within its room: a post takes
//! room for its body before the body is read, and gives it back when the
//! session takes the message (its pending messages are bounded from there
//! on, as a WebSocket session's are). So a client whose session does not
//! take its posts (it is writing to a client that reads nothing) holds
//! at most the room, however many posts it sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::SessionId;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::IdMap;
use crate::base::transport::Incoming;

/// Messages a session's inbox holds before a post waits for a place.
pub const INBOX_MESSAGES: usize = 16;

/// A posted message, with the room its body takes until the session
/// takes it. Boxed: a channel keeps room for 32 of what it carries from
/// the start, and an idle SSE session should not pay for 32 messages it
/// has not been sent.
pub struct Posted {
    pub incoming: Incoming,
    _room: OwnedSemaphorePermit,
}

/// One connection's inbox: what was posted to its session.
pub struct Inbox {
    id: SessionId,
    pub receiver: mpsc::Receiver<Box<Posted>>,
    /// Tells this inbox from a later connection's of the same session.
    sender: mpsc::Sender<Box<Posted>>,
    room: Arc<Semaphore>,
}

impl Inbox {
    pub fn id(&self) -> SessionId {
        self.id
    }
}

/// Why a post was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No room in time: the session is not taking its posts.
    Busy,
    /// The session's connection is gone.
    Ended,
}

/// Where posts to one session go.
#[derive(Clone)]
pub struct Mail {
    sender: mpsc::Sender<Box<Posted>>,
    room: Arc<Semaphore>,
}

impl Mail {
    /// Room for `bytes` (at most the whole room), waiting up to `wait`.
    pub async fn room(&self, bytes: usize, wait: Duration) -> Result<OwnedSemaphorePermit, Refusal> {
        let bytes = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
        match tokio::time::timeout(wait, self.room.clone().acquire_many_owned(bytes)).await {
            Ok(Ok(room)) => Ok(room),
            Ok(Err(_)) => Err(Refusal::Ended),
            Err(_) => Err(Refusal::Busy),
        }
    }

    /// Posts `incoming`, which took `room` (its size is kept, the rest given back).
    pub async fn post(
        &self,
        incoming: Incoming,
        mut room: OwnedSemaphorePermit,
        size: usize,
        wait: Duration,
    ) -> Result<(), Refusal> {
        drop(room.split(room.num_permits().saturating_sub(size.max(1))));
        let posted = Box::new(Posted { incoming, _room: room });
        self.sender.send_timeout(posted, wait).await.map_err(|err| match err {
            mpsc::error::SendTimeoutError::Timeout(_) => Refusal::Busy,
            mpsc::error::SendTimeoutError::Closed(_) => Refusal::Ended,
        })
    }
}

pub struct Inboxes {
    by_session: Mutex<IdMap<Mail>>,
    /// The bytes an inbox holds at most (`--max-pending-bytes`, and room
    /// for one largest message).
    room: usize,
    /// Sessions that ended here lately, the oldest first: a post to one
    /// is told it ended (410), not that it is elsewhere (421).
    ended: Mutex<Ended>,
}

/// Sessions ended here, the last [`ENDED_KEPT`].
#[derive(Default)]
struct Ended {
    order: std::collections::VecDeque<SessionId>,
    ids: IdMap<()>,
}

/// Ended sessions remembered, at most (16 bytes and a map slot each).
pub const ENDED_KEPT: usize = 16_384;

impl Inboxes {
    pub fn new(room: usize) -> Inboxes {
        Inboxes { by_session: Mutex::default(), room, ended: Mutex::default() }
    }

    /// A session ended here (not moved to another gateway).
    pub fn note_ended(&self, id: SessionId) {
        let mut ended = self.ended.lock().expect("not poisoned");
        if ended.ids.insert(id, ()).is_none() {
            ended.order.push_back(id);
        }
        while ended.order.len() > ENDED_KEPT {
            let oldest = ended.order.pop_front().expect("over the bound");
            ended.ids.remove(&oldest);
        }
    }

    /// Whether `id` ended here lately.
    pub fn ended_here(&self, id: SessionId) -> bool {
        self.ended.lock().expect("not poisoned").ids.contains_key(&id)
    }

    /// A new inbox for `id`'s connection, in place of an earlier
    /// connection's (a resume): what it sends the session reads.
    pub fn open(&self, id: SessionId) -> Inbox {
        let (sender, receiver) = mpsc::channel(INBOX_MESSAGES);
        let room = Arc::new(Semaphore::new(self.room.min(Semaphore::MAX_PERMITS)));
        let mail = Mail { sender: sender.clone(), room: room.clone() };
        self.by_session.lock().expect("not poisoned").insert(id, mail);
        Inbox { id, receiver, sender, room }
    }

    /// Drops `inbox` if it is still its session's, not a later
    /// connection's; posts that wait for its room are told it ended.
    pub fn close(&self, inbox: &Inbox) {
        inbox.room.close();
        let mut by_session = self.by_session.lock().expect("not poisoned");
        if by_session.get(&inbox.id).is_some_and(|mail| mail.sender.same_channel(&inbox.sender)) {
            by_session.remove(&inbox.id);
        }
    }

    /// Where to send `id`'s messages, if its connection is here.
    pub fn get(&self, id: SessionId) -> Option<Mail> {
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

    const WAIT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn a_resumed_connection_takes_the_inbox_and_the_old_one_cannot_drop_it() {
        let inboxes = Inboxes::new(100);
        let id: SessionId = "00000000000000aa".parse().unwrap();
        let old = inboxes.open(id);
        let mut new = inboxes.open(id);
        let mail = inboxes.get(id).unwrap();
        let room = mail.room(10, WAIT).await.unwrap();
        mail.post(Incoming::Control, room, 10, WAIT).await.unwrap();
        assert!(matches!(new.receiver.try_recv().as_deref(), Ok(Posted { incoming: Incoming::Control, .. })));
        inboxes.close(&old);
        assert_eq!(inboxes.count(), 1, "the old connection's end leaves the new one's inbox");
        inboxes.close(&new);
        assert!(inboxes.get(id).is_none() && inboxes.count() == 0);
        assert_eq!(mail.room(1, WAIT).await.unwrap_err(), Refusal::Ended, "a post to a closed inbox hears so");
    }

    #[test]
    fn the_last_ended_sessions_are_remembered_and_no_more() {
        let inboxes = Inboxes::new(1);
        for n in 0..ENDED_KEPT as u64 + 2 {
            inboxes.note_ended(SessionId::from_u64(n));
        }
        assert!(!inboxes.ended_here(SessionId::from_u64(1)), "the oldest forgotten");
        assert!(
            inboxes.ended_here(SessionId::from_u64(2))
                && inboxes.ended_here(SessionId::from_u64(ENDED_KEPT as u64 + 1))
        );
    }

    #[tokio::test]
    async fn posts_hold_room_for_their_bodies_until_the_session_takes_them() {
        let inboxes = Inboxes::new(100);
        let id: SessionId = "00000000000000bb".parse().unwrap();
        let mut inbox = inboxes.open(id);
        let mail = inboxes.get(id).unwrap();
        let room = mail.room(100, WAIT).await.unwrap();
        mail.post(Incoming::Control, room, 60, WAIT).await.unwrap();
        assert_eq!(mail.room(41, WAIT).await.unwrap_err(), Refusal::Busy, "60 of 100 held: 41 do not fit");
        let fits = mail.room(40, WAIT).await.unwrap();
        drop(fits);
        drop(inbox.receiver.try_recv().unwrap());
        assert!(mail.room(100, WAIT).await.is_ok(), "taken, its room is back");
    }
}
