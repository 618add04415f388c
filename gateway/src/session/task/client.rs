//! The session's side of its client's connection: what it writes (with a
//! timeout and, when resumable, numbered for a replay), its greeting, and
//! what it notes of each frame.

use std::collections::VecDeque;

use futures_util::SinkExt;
use tokio::time::Instant;

use super::Session;
use crate::base::close::CloseReason;
use crate::base::message::{Greeting, Message};
use crate::base::transport::{Incoming, Transport};
use crate::metrics::Count;
use crate::resume::replay::ReplayBounds;
use crate::resume::token::Token;
use crate::session::lifecycle::Action;
use crate::session::Host;

/// Pusher's own `activity_timeout`: a pusher-js client that hears nothing
/// for this long sends `pusher:ping`. Less, when the gateway's idle
/// timeout would close a silent client first.
const PUSHER_ACTIVITY_TIMEOUT_S: u64 = 120;

impl<T: Transport, H: Host> Session<T, H> {
    /// Sends one message on the connection, if there is one.
    pub(super) async fn send(&mut self, message: Message) -> Option<std::io::Result<()>> {
        Some(self.conn.as_mut()?.send(message).await)
    }

    /// Tells the transport the backend took the session: an SSE stream's
    /// response begins only now. A failed write shows at the next one.
    pub(super) async fn accepted(&mut self) {
        let timeout = self.host.session_settings().write_timeout;
        let _ = tokio::time::timeout(timeout, self.send(Message::Accepted)).await;
        if self.pusher.is_some() {
            // Boxed: its state would sit in every session's future.
            Box::pin(self.greet_pusher()).await;
        }
    }

    /// A Pusher client's first message: `pusher:connection_established`.
    async fn greet_pusher(&mut self) {
        let Some(client) = &self.pusher else { return };
        let settings = self.host.session_settings();
        let activity_timeout = (settings.idle_timeout.as_secs() / 2).clamp(1, PUSHER_ACTIVITY_TIMEOUT_S);
        let established = protocol::pusher::connection_established(&client.socket_id, activity_timeout);
        let _ = tokio::time::timeout(settings.write_timeout, self.send(Message::text(established))).await;
    }

    /// The session message a resumable session's client gets first, then
    /// (resumed) what it missed. `last` is how many messages it says it got.
    pub(super) async fn greet(&mut self, resumed: bool, last: Option<u64>) {
        let log = self.replay_log.as_mut().expect("resumable");
        let replay = if resumed { log.replay_after(last) } else { Ok(Vec::new()) };
        let resume = self.host.resume_keys().sign(Token { session: self.id, generation: log.generation });
        let Ok(replay) = replay else {
            tracing::info!(session = %self.id, ?last, "client missed messages no longer kept");
            let (settings, metrics) = (self.host.session_settings(), self.host.metrics());
            let action = self.life.close(CloseReason::ResumeGap, Instant::now(), settings, metrics);
            return self.carry_out(action).await;
        };
        if resumed {
            self.host.metrics().count(Count::Resumed);
            tracing::debug!(session = %self.id, replayed = replay.len(), "resumed");
        }
        // Neither is numbered again: the session message never is, the
        // replayed messages were when first written.
        let next_seq = log.next_seq - replay.len() as u64;
        let hello = Message::Session(Box::new(Greeting { id: self.id, resume, resumed, next_seq }));
        let batch = std::iter::once(hello).chain(replay).collect();
        let action = self.write_batch(batch, false).await;
        self.carry_out(action).await;
    }

    /// Notes that the client is there, and logs what the lifecycle will
    /// make of a frame that ends it.
    pub(super) fn on_client_frame(&self, frame: &Option<Incoming>) {
        match frame {
            Some(Incoming::Violation(violation)) => {
                tracing::info!(session = %self.id, %violation, "client sent what it may not")
            }
            Some(Incoming::Failed(err)) => tracing::debug!(session = %self.id, %err, "client connection failed"),
            _ => {}
        }
        if frame.is_some() {
            self.mailbox.heard_from_client();
        }
    }

    /// Writes messages with one flush and the write timeout (a fan-out
    /// burst costs one write per session, not one per message); `number`
    /// them, in a resumable session, to keep them for a resume. Every write
    /// has a timeout: a client that stops reading must not hold its session
    /// forever.
    pub(super) async fn write_batch(&mut self, batch: VecDeque<Message>, number: bool) -> Action {
        if let (Some(log), true) = (self.replay_log.as_mut(), number) {
            let limits = &self.host.session_settings().mailbox;
            let bounds = ReplayBounds { messages: limits.parked_messages, bytes: limits.parked_bytes };
            for message in &batch {
                log.record(message, bounds);
            }
        }
        let Some(conn) = self.conn.as_mut() else { return Action::None };
        let timeout = self.host.session_settings().write_timeout;
        let write = async move {
            for message in batch {
                conn.feed(message).await?;
            }
            conn.flush().await
        };
        let failure = match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => return Action::None,
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("client read nothing for {timeout:?}"),
        };
        tracing::debug!(session = %self.id, failure, "write to client failed");
        let timed_out = failure.starts_with("client read nothing");
        let (settings, metrics) = (self.host.session_settings(), self.host.metrics());
        self.life.write_failed(timed_out, Instant::now(), settings, metrics)
    }
}
