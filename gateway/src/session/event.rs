//! How each kind of a session's events is sent: a close or offline event,
//! which no later one stands in for, is tried again while the backend is
//! down. What the request holds is `upstream::cgi`'s.

use std::time::Duration;

use bytes::Bytes;
use protocol::SessionId;
use tokio::time::Instant;

use super::Host;
use crate::metrics::Count;
pub use crate::upstream::cgi::{Event, EventKind};
use crate::upstream::fastcgi::{Abort, CgiResponse, Pool, UpstreamError};

/// A session's events waiting for the backend, in order: boxed, and gone
/// while none wait, so an idle session holds one empty pointer; one event
/// (most often all there is) takes one allocation.
#[derive(Default)]
pub struct Pending(Option<Box<Queue>>);

struct Queue {
    front: Event,
    rest: std::collections::VecDeque<Event>,
}

impl Pending {
    pub fn push_back(&mut self, event: Event) {
        match &mut self.0 {
            Some(queue) => queue.rest.push_back(event),
            None => self.0 = Some(Box::new(Queue { front: event, rest: Default::default() })),
        }
    }

    pub fn pop_front(&mut self) -> Option<Event> {
        let queue = self.0.as_mut()?;
        match queue.rest.pop_front() {
            Some(next) => Some(std::mem::replace(&mut queue.front, next)),
            None => self.0.take().map(|queue| queue.front),
        }
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |queue| 1 + queue.rest.len())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

/// The first and the longest pause between tries of a close or offline event.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Sends one event's request to `pool`. A close, offline or occupancy
/// event, which no later event stands in for, is sent again with backoff while the
/// backend looks down, for `--event-retry-ms`; then it is given up,
/// logged with the session and counted.
pub async fn send(
    host: &dyn Host,
    pool: &Pool,
    kind: EventKind,
    request: &[u8],
    session: &SessionId,
    abort: &mut Abort,
) -> Result<CgiResponse, UpstreamError> {
    let label = session.as_str();
    if !matches!(kind, EventKind::Close | EventKind::Offline | EventKind::Occupied | EventKind::Vacated) {
        return pool.call(request, label, abort).await;
    }
    let deadline = Instant::now() + host.session_settings().event_retry;
    let mut pause = RETRY_FIRST;
    loop {
        match pool.call(request, label, &mut None).await {
            Err(err) if err.backend_down() && Instant::now() + pause < deadline => {
                host.metrics().count(Count::EventRetries);
                tracing::info!(session = label, ?kind, %err, "backend down: sending the event again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
            Err(err) => {
                let given_up = match kind {
                    EventKind::Close => Count::CloseEventsGivenUp,
                    EventKind::Offline => Count::OfflineEventsGivenUp,
                    _ => Count::OccupancyEventsGivenUp,
                };
                host.metrics().count(given_up);
                tracing::error!(session = label, ?kind, %err, "event given up: the backend never took it");
                return Err(err);
            }
            answered => return answered,
        }
    }
}

/// Close events of sessions no task here ends, sent at once at most.
const CLOSE_EVENTS_AT_ONCE: usize = 64;

/// Sends the close event, to this gateway's backend, for sessions no
/// session task here ends: a dead gateway's, or one that could not move.
/// The params are this gateway's static ones, SESSIONID and EVENT=2.
pub async fn send_close_events(host: &dyn Host, ids: Vec<SessionId>) {
    if !host.session_settings().close_event {
        return;
    }
    use futures_util::StreamExt;
    let close = |id: SessionId| async move {
        let event = Event { kind: EventKind::Close, body: Bytes::new() };
        let request = host.events().encode(&[], &id, &event);
        let _ = send(host, host.default_pool(), EventKind::Close, &request, &id, &mut None).await;
    };
    futures_util::stream::iter(ids).for_each_concurrent(CLOSE_EVENTS_AT_ONCE, close).await;
}

/// Tells this gateway's backend that a presence channel got its first
/// member or lost its last (EVENT=6 or 7, with CHANNEL), as a router asked:
/// SESSIONID names the session that filled or emptied it.
pub async fn send_occupancy(host: &dyn Host, occupancy: protocol::Occupancy) {
    let kind = if occupancy.occupied { EventKind::Occupied } else { EventKind::Vacated };
    let event = Event { kind, body: Bytes::copy_from_slice(occupancy.channel.as_str().as_bytes()) };
    let request = host.events().encode(&[], &occupancy.session, &event);
    let _ = send(host, host.default_pool(), kind, &request, &occupancy.session, &mut None).await;
}
