//! What a session waits on, all at once and in place: the backend's reply,
//! a client frame, the mailbox, the client's deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::StreamExt;

use super::Session;
use crate::base::transport::{Incoming, Transport};
use crate::session::event::Event;
use crate::session::lifecycle::Phase;
use crate::session::mailbox::Taken;
use crate::session::Host;
use crate::upstream::fastcgi::{CgiResponse, UpstreamError};

/// The backend call in flight, as a future the session polls in place.
pub(super) type Reply = Pin<Box<dyn Future<Output = (Event, Result<CgiResponse, UpstreamError>)> + Send>>;

/// What woke an idle session.
pub(super) enum Wake {
    /// Boxed: a response is large, and every idle session would hold room for one.
    Reply(Box<(Event, Result<CgiResponse, UpstreamError>)>),
    Frame(Option<Incoming>),
    Taken(Taken),
    Deadline,
}

impl<T: Transport, H: Host> Session<T, H> {
    /// Waits for the next thing the session must act on: the backend's
    /// reply, a client frame, the mailbox, or the client's deadline. Each is
    /// polled in place, so nothing of the wait is stored in an idle
    /// session but a boxed timer while a deadline runs; each wait starts at
    /// the next source in turn, so a busy one starves none.
    pub(super) fn poll_wake(&mut self, in_flight: &mut Option<Reply>, cx: &mut Context<'_>) -> Poll<Wake> {
        self.turn = (self.turn + 1) % 4;
        for source in 0..4 {
            let wake = match (self.turn + source) % 4 {
                0 => match in_flight.as_mut() {
                    Some(call) => call.as_mut().poll(cx).map(|reply| Wake::Reply(Box::new(reply))),
                    None => Poll::Pending,
                },
                1 => match self.conn.as_mut() {
                    Some(conn) if self.life.reading() => conn.poll_next_unpin(cx).map(Wake::Frame),
                    _ => Poll::Pending,
                },
                2 => match self.life.phase() {
                    Phase::Open => self.mailbox.poll_take(cx, true).map(Wake::Taken),
                    Phase::Parked { .. } => self.mailbox.poll_take(cx, false).map(Wake::Taken),
                    _ => Poll::Pending,
                },
                _ => self.poll_deadline(cx),
            };
            if wake.is_ready() {
                return wake;
            }
        }
        Poll::Pending
    }

    /// The timer lives only while the client has a deadline.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        let Some(deadline) = self.life.deadline() else {
            self.timer = None;
            return Poll::Pending;
        };
        let timer = match &mut self.timer {
            Some(timer) if timer.deadline() == deadline => timer,
            timer => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        ready!(timer.as_mut().poll(cx));
        self.timer = None;
        Poll::Ready(Wake::Deadline)
    }
}
