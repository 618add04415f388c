//! The session's side of the backend: each event sent as a call the
//! session polls while it goes on reading and writing, and what the answer
//! does.

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::wait::Reply;
use super::Session;
use crate::base::transport::Transport;
use crate::session::event::{Event, EventKind};
use crate::session::lifecycle::{Action, Joining};
use crate::session::policy;
use crate::session::Host;
use crate::upstream::fastcgi::{CgiResponse, UpstreamError};

impl<T: Transport, H: Host> Session<T, H> {
    /// Encodes the event now and returns the backend call as a future, so
    /// the connection keeps reading and writing while the backend works.
    /// Returns the call and, unless it is the close event, the switch that
    /// aborts it should the client leave first.
    pub(super) fn dispatch(&self, event: Event) -> (Option<Reply>, Option<oneshot::Sender<()>>) {
        let kind = event.kind;
        if matches!(kind, EventKind::Offline | EventKind::Online) {
            self.host.away(self.id, kind == EventKind::Offline);
        }
        if let Some(refused) = self.no_room(&event) {
            return (Some(Box::pin(async move { (event, refused) })), None);
        }
        let request = self.host.events().encode(&[&self.params, self.meta()], &self.id, &event);
        let host = self.host.clone();
        let (abort_tx, abort_rx) = match kind {
            EventKind::Connect | EventKind::Message { .. } => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let id = self.id;
        let call = Box::pin(async move {
            let mut abort = abort_rx;
            let pool = host.pool_for(&event);
            let result = crate::session::event::send(&*host, pool, kind, &request, &id, &mut abort).await;
            (event, result)
        });
        (Some(call), abort_tx)
    }

    /// A client's ask to join a channel that has no room: the session's
    /// share or the gateway's is taken. The gateway answers it for the
    /// backend, which never hears of it.
    fn no_room(&self, event: &Event) -> Option<Result<CgiResponse, UpstreamError>> {
        if event.kind != EventKind::Subscribe {
            return None;
        }
        let status = self.room_refused(std::str::from_utf8(&event.body).unwrap_or(""))?;
        Some(Ok(CgiResponse { status, headers: Vec::new(), body: bytes::Bytes::new() }))
    }

    /// Why a client's own join of `channel` has no room, if it has none:
    /// 429, the session's share is taken; 503, the gateway's (counted).
    pub(super) fn room_refused(&self, channel: &str) -> Option<u16> {
        let settings = self.host.session_settings();
        let room =
            self.host.registry().room_for(&self.id, channel, settings.max_session_channels, settings.max_channels);
        let status = room.err()?;
        self.host.metrics().count(crate::metrics::Count::SubscribesRefused);
        tracing::debug!(session = %self.id, channel, status, "a client's subscribe refused: no room");
        Some(status)
    }

    /// What the backend's answer does (see [`policy::answered`]), logged
    /// and counted; the meta it asks for is remembered. A subscribe the
    /// backend allowed joins the session to its channel (answered once
    /// every router routes it here). Says too whether
    /// it took the session (its connect event answered yes).
    pub(super) fn on_reply(&mut self, (event, result): (Event, Result<CgiResponse, UpstreamError>)) -> (Action, bool) {
        let (settings, metrics) = (self.host.session_settings(), self.host.metrics());
        let kind = event.kind;
        match &result {
            Err(err) if !matches!(kind, EventKind::Close | EventKind::Offline) => {
                tracing::warn!(session = %self.id, ?kind, %err, "backend call failed");
                metrics.backend_failed(err);
            }
            Err(_) => {}
            Ok(response) => {
                if let Some((meta, dropped)) = crate::upstream::cgi::merged_meta(self.meta(), &response.headers) {
                    for err in dropped {
                        tracing::warn!(session = %self.id, %err, "session meta dropped");
                    }
                    self.meta = super::boxed_meta(meta);
                }
            }
        }
        let answer = match kind {
            EventKind::ClientEvent => {
                let (status, body) = match &result {
                    Ok(response) => (Some(response.status), &response.body[..]),
                    Err(_) => (None, &[][..]),
                };
                let action = self.client_event_answered(&event.body, status, body);
                return (action, false);
            }
            EventKind::Subscribe => match policy::subscribe_answered(&event.body, &result) {
                // Joined, then answered (once every router routes it here).
                (policy::Answered::Deliver(answer), Some(channel)) => {
                    let joining = Joining { channel, member: None, answer };
                    return (Action::Join(Box::new(joining)), false);
                }
                (answer, _) => answer,
            },
            _ => policy::answered(kind, &result, settings.error_reply),
        };
        let taken = kind == EventKind::Connect && matches!(answer, policy::Answered::Deliver(_));
        (self.life.answered(answer, Instant::now(), settings, metrics), taken)
    }
}
