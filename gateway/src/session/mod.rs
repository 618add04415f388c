//! Client sessions. `lifecycle` is one client's life as a state machine
//! without I/O, on `policy`'s pure decisions (what a reply, a goodbye or a
//! drop does); `task` carries it out on the sockets; `event` turns events
//! into FastCGI requests and sends them; `mailbox` is what others leave for
//! a session (pushes, a close, a resume's claim), and `inboxes` what its
//! client posts (SSE); `registry` finds a live session by id,
//! `memberships` the sessions of a channel, and `catchups` the joiners of
//! a kept channel that wait for its history. A session sees the gateway
//! that runs it only as a [`Host`].

pub mod catchups;
pub mod event;
pub mod inboxes;
pub mod lifecycle;
pub mod mailbox;
pub mod memberships;
pub mod orphans;
pub mod policy;
pub mod pusher;
pub mod registry;
pub mod task;

use std::sync::Arc;
use std::time::Duration;

use protocol::SessionId;
pub use registry::Registry;

/// Session ids are random and made by gateways, so a fast hasher is as
/// safe as the default one, and a push to 10,000 sessions hashes 10,000.
pub(crate) type IdMap<V> = std::collections::HashMap<SessionId, V, foldhash::fast::RandomState>;

use crate::metrics::Metrics;
use crate::resume::budget::ResumeBudget;
use crate::resume::token::TokenKey;
use crate::upstream::cgi::{Event, EventEncoder};
use crate::upstream::fastcgi::Pool;
use crate::Config;
use memberships::ChannelCount;

/// What a session needs of the gateway that runs it, and no more: the
/// gateway's handle (`state::Gateway`) is one, and the session layer
/// imports nothing above itself.
pub trait Host: Send + Sync + 'static {
    /// What every session follows.
    fn session_settings(&self) -> &SessionSettings;
    fn metrics(&self) -> &Metrics;
    /// Every live session, by id.
    fn registry(&self) -> &Registry;
    /// Builds each event's FastCGI request.
    fn events(&self) -> &EventEncoder;
    /// The pool an event goes to, by the routes.
    fn pool_for(&self, event: &Event) -> &Pool;
    /// Where events of sessions no task here runs go (a dead gateway's).
    fn default_pool(&self) -> &Pool;
    fn resume_keys(&self) -> &TokenKey;
    /// Tells the routers a session began here.
    fn opened(&self, id: SessionId);
    /// Tells the routers a session ended here, and its channels' new counts.
    fn ended(&self, id: SessionId, counts: Vec<ChannelCount>);
    /// Joins a session to a channel its client asked for and its backend
    /// allowed (or, for a Pusher client, its backend signed): here, and at
    /// every router; as `member` of a presence channel, if given. Done once
    /// every router linked routes the channel here, so a publish through
    /// any of them after the client's answer reaches it.
    fn subscribed<'a>(
        &'a self,
        id: SessionId,
        channel: &'a protocol::cmd::Channel,
        member: Option<protocol::pusher::PresenceMember>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
    /// A Pusher client left a channel: here, and at every router.
    fn unsubscribed(&self, id: SessionId, channel: &protocol::cmd::Channel);
    /// A Pusher client's event, to the channel's other members through a
    /// router; false when no router is linked.
    fn relay(&self, id: SessionId, channel: protocol::cmd::Channel, envelope: bytes::Bytes) -> bool;
    /// A Pusher client signed in as `user` (the app's): its session is
    /// bound to it, here and at every router.
    fn signed_in(&self, id: SessionId, user: &str);
    /// Tells the routers a session's client went away (it waits to be
    /// resumed) or came back: presence channels show it offline or online.
    fn away(&self, id: SessionId, away: bool);
}

/// What every session follows, read from the flags once.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    pub connect_event: bool,
    /// Whether a client may ask to join a channel (the backend decides).
    pub client_subscribe: bool,
    /// Room for a client's ask: the session's channels, and the gateway's.
    pub max_session_channels: usize,
    pub max_channels: usize,
    pub close_event: bool,
    /// Whether a 5xx with an empty body answers a message with the gateway's error frame.
    pub error_reply: bool,
    /// Messages a second (0: no limit), and the burst above it.
    pub max_message_rate: f32,
    pub max_message_burst: f32,
    pub max_pending_events: usize,
    pub max_pending_bytes: usize,
    /// How long a resumable session waits for its client; zero: no resume.
    pub resume_grace: Duration,
    pub write_timeout: Duration,
    /// How long a client may stay silent (a Pusher client's
    /// `activity_timeout` is set within it).
    pub idle_timeout: Duration,
    /// How long a close or offline event is tried while the backend is down.
    pub event_retry: Duration,
    /// Shared by every mailbox: one pointer each instead of four numbers.
    /// Its resume budget is also every replay log's.
    pub mailbox: Arc<mailbox::Limits>,
}

impl SessionSettings {
    /// What all resumable sessions keep, in all.
    pub fn resume_budget(&self) -> &Arc<ResumeBudget> {
        &self.mailbox.resume_budget
    }
}

impl SessionSettings {
    pub fn new(config: &Config) -> SessionSettings {
        SessionSettings {
            connect_event: config.connect_event,
            client_subscribe: config.client_subscribe,
            max_session_channels: config.max_session_channels,
            max_channels: config.max_channels,
            close_event: config.close_event,
            error_reply: config.error_reply,
            max_message_rate: config.max_message_rate,
            max_message_burst: config.max_message_burst as f32,
            max_pending_events: config.max_pending_events,
            max_pending_bytes: config.max_pending_bytes,
            resume_grace: Duration::from_millis(config.resume_grace_ms),
            write_timeout: Duration::from_millis(config.write_timeout_ms),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            event_retry: Duration::from_millis(config.event_retry_ms),
            mailbox: Arc::new(mailbox::Limits {
                messages: config.outbound_queue,
                bytes: config.outbound_queue_bytes,
                parked_messages: config.resume_buffer_messages,
                parked_bytes: config.resume_buffer_bytes,
                resume_budget: Arc::new(ResumeBudget::new(config.resume_buffer_total_bytes)),
            }),
        }
    }
}
