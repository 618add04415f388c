//! The gateway's handle: its shared state, one for every phase, as
//! mini-redis's `Db`. The session layer sees it only as a `session::Host`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use anyhow::Context;
use protocol::cmd::Channel;
use protocol::pusher::PresenceMember;
use protocol::{encode_ids, Frame, FrameKind, SessionId};
use runtime::metrics::Snapshot;

use crate::admission::AdmissionControl;
use crate::links::RouterLinks;
use crate::metrics::{Count, Metrics, Now};
use crate::resume::token::TokenKey;
use crate::session::inboxes::Inboxes;
use crate::session::memberships::ChannelCount;
use crate::session::orphans::Orphans;
use crate::session::{Host, Registry, SessionSettings};
use crate::upstream;
use crate::upstream::cgi::{Event, EventEncoder};
use crate::upstream::fastcgi::{Pool, Upstreams};
use crate::upstream::routing::Routes;
use crate::Config;

/// The gateway's shared state, one handle for every phase; each part is
/// reached through a method that says what it is for.
pub struct Gateway {
    config: Config,
    session: SessionSettings,
    upstreams: Upstreams,
    routes: Routes,
    metrics: Metrics,
    admission: AdmissionControl,
    registry: Arc<Registry>,
    links: RouterLinks,
    events: EventEncoder,
    resume_keys: TokenKey,
    /// SSE sessions' posted messages, by session.
    inboxes: Inboxes,
    /// A dead gateway's sessions, waiting for the close events sent for it.
    orphans: Orphans,
    pages: Vec<Page>,
    /// Connections not yet sessions, under `--max-handshakes`.
    handshakes: runtime::Slots,
    /// Whose Pusher clients connect at `/app/KEY`, and their seats here.
    pusher_apps: protocol::pusher::Apps,
    pusher_seats: crate::session::pusher::AppSeats,
}

/// A file served on GET (`--page`), read at start.
pub struct Page {
    path: String,
    pub content_type: &'static str,
    pub body: bytes::Bytes,
}

impl Page {
    fn load(path: &str, file: &std::path::Path) -> anyhow::Result<Page> {
        let body = std::fs::read(file).with_context(|| format!("--page {path}={}", file.display()))?;
        let content_type = match file.extension().and_then(|e| e.to_str()) {
            Some("html" | "htm") => "text/html; charset=utf-8",
            Some("js" | "mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("json") => "application/json",
            Some("txt") => "text/plain; charset=utf-8",
            _ => "application/octet-stream",
        };
        Ok(Page { path: path.to_owned(), content_type, body: body.into() })
    }
}

impl Gateway {
    /// The handle, from the flags, the session registry and the links that
    /// were started with it: checks the backends and routes, reads pages.
    pub fn new(config: Config, registry: Arc<Registry>, links: RouterLinks) -> anyhow::Result<Gateway> {
        let upstreams = Upstreams::new(&config.backends, &config.backend_options(), config.backend_inflight_bytes)
            .map_err(anyhow::Error::msg)?;
        let routes = Routes::new(config.routes.clone(), &upstreams).map_err(anyhow::Error::msg)?;
        if let Some(route) = config.http_routes.iter().find(|r| upstreams.pool(&r.pool).is_none()) {
            anyhow::bail!("--http-route {} names pool {:?}, which has no --backend", route.prefix, route.pool);
        }
        // The files' first, so a --param wins over them.
        let mut params = Vec::new();
        for file in &config.param_files {
            params.extend(upstream::cgi::read_param_file(file)?);
        }
        params.extend(config.params.iter().cloned());
        let pusher_apps = protocol::pusher::Apps::new(config.pusher_apps.clone()).map_err(anyhow::Error::msg)?;
        Ok(Gateway {
            pusher_seats: crate::session::pusher::AppSeats::new(&pusher_apps),
            pusher_apps,
            resume_keys: TokenKey::new(config.resume_secret.as_deref()),
            inboxes: Inboxes::new(config.max_pending_bytes.max(config.max_message)),
            orphans: Orphans::default(),
            events: EventEncoder::new(
                upstream::cgi::static_params(params.iter().map(|(n, v)| (n.as_str(), v.as_str())))?,
                &config.param_prefix,
            ),
            admission: AdmissionControl::new(&config),
            pages: config.pages.iter().map(|(path, file)| Page::load(path, file)).collect::<anyhow::Result<_>>()?,
            handshakes: runtime::Slots::new(config.max_handshakes),
            session: SessionSettings::new(&config),
            config,
            upstreams,
            routes,
            metrics: Metrics::default(),
            registry,
            links,
        })
    }

    pub fn pusher_apps(&self) -> &protocol::pusher::Apps {
        &self.pusher_apps
    }

    pub fn pusher_seats(&self) -> &crate::session::pusher::AppSeats {
        &self.pusher_seats
    }

    /// The flags, as given.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn links(&self) -> &RouterLinks {
        &self.links
    }

    /// A dead gateway's sessions, waiting for their close events.
    pub fn orphans(&self) -> &Orphans {
        &self.orphans
    }

    /// Who may connect (see [`crate::admission`]).
    pub fn inboxes(&self) -> &Inboxes {
        &self.inboxes
    }

    pub fn admission(&self) -> &AdmissionControl {
        &self.admission
    }

    /// Connections in their handshake now.
    pub fn handshakes(&self) -> usize {
        self.handshakes.in_use()
    }

    /// The slots every listener's handshakes share.
    pub fn handshake_slots(&self) -> &runtime::Slots {
        &self.handshakes
    }

    /// A pool by name (plain HTTP routes), the default one, or all.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.upstreams.pool(name)
    }

    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// Every metric: the counters, and what it holds now.
    pub fn render_metrics(&self) -> String {
        let (links, stats) = (self.links.health(), &self.links.stats);
        let budget = self.session.resume_budget();
        let catchups = self.registry.catchup_counts();
        let mut now = Snapshot::<Now>::default();
        now.set(Now::Sessions, self.registry.len() as f64)
            .set(Now::Handshakes, self.handshakes() as f64)
            .set(Now::BackendInflightBytes, self.upstreams.in_flight_bytes() as f64)
            .set(Now::LinksUp, links.up as f64)
            .set(Now::LinkQueuedEvents, links.queued as f64)
            .set(Now::UnreportedCloses, links.unreported as f64)
            .set(Now::SilentRouters, stats.silent_routers.load(Relaxed) as f64)
            .set(Now::LinkOverflows, stats.overflows.load(Relaxed) as f64)
            .set(Now::ClosesLost, stats.closes_lost.load(Relaxed) as f64)
            .set(Now::PushesQueued, stats.pushes_queued.load(Relaxed) as f64)
            .set(Now::OrphanClosesQueued, self.orphans.len() as f64)
            .set(Now::Offline, self.registry.parked() as f64)
            .set(Now::SseStreams, self.inboxes.count() as f64)
            .set(Now::ResumeBufferedBytes, budget.used() as f64)
            .set(Now::ResumeBudgetDropped, budget.dropped() as f64)
            .set(Now::OutboundQueuedBytes, self.registry.queued_bytes() as f64)
            .set(Now::HistoryHeld, catchups.held as f64)
            .set(Now::HistoryRepeatsDropped, catchups.repeats as f64)
            .set(Now::HistoryHoldsAbandoned, catchups.abandoned as f64);
        self.metrics.render(&now, &self.upstreams)
    }

    /// How this gateway is, for the routers' operator page.
    pub fn status(&self) -> protocol::GatewayStatus {
        let count = |which| self.metrics.get(which);
        let backends = self.upstreams.pools().iter().flat_map(|pool| {
            pool.backends().iter().map(|backend| {
                let (failures, timeouts) = backend.failures_total();
                protocol::BackendStatus {
                    pool: pool.name.clone(),
                    backend: backend.addr().to_string(),
                    open: backend.open_connections() as u64,
                    ejected: backend.is_ejected(),
                    failures,
                    timeouts,
                }
            })
        });
        protocol::GatewayStatus {
            sessions: self.registry.len() as u64,
            backends: backends.take(protocol::status::MAX_BACKENDS).collect(),
            messages_in: count(Count::MessagesIn),
            messages_out: count(Count::RepliesOut) + self.links.stats.pushes_queued.load(Relaxed),
            backend_failures: count(Count::BackendFailures),
            backend_timeouts: count(Count::BackendTimeouts),
            event_retries: count(Count::EventRetries),
            events_given_up: count(Count::CloseEventsGivenUp)
                + count(Count::OfflineEventsGivenUp)
                + count(Count::OccupancyEventsGivenUp),
        }
    }

    /// The page served on GET `path`, if one was given.
    pub fn page(&self, path: &str) -> Option<&Page> {
        self.pages.iter().find(|page| page.path == path)
    }
}

impl Host for Gateway {
    fn session_settings(&self) -> &SessionSettings {
        &self.session
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn events(&self) -> &EventEncoder {
        &self.events
    }

    fn pool_for(&self, event: &Event) -> &Pool {
        self.routes.pool_for(&self.upstreams, event)
    }

    fn default_pool(&self) -> &Pool {
        self.upstreams.default_pool()
    }

    fn resume_keys(&self) -> &TokenKey {
        &self.resume_keys
    }

    fn opened(&self, id: SessionId) {
        self.links.connected(id);
    }

    fn ended(&self, id: SessionId, counts: Vec<ChannelCount>) {
        self.links.closed(id, counts);
        self.inboxes.note_ended(id);
    }

    fn subscribed<'a>(
        &'a self,
        id: SessionId,
        channel: &'a Channel,
        member: Option<PresenceMember>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let member = member.map(|PresenceMember { user_id, user_info }| protocol::MemberJoin {
                session: id,
                channel: channel.clone(),
                user: user_id,
                info: user_info,
            });
            let count = match &member {
                Some(join) => self.registry.join_here_as(join.clone()),
                None => self.registry.join_here(id, channel),
            };
            let Some(count) = count else { return };
            // The channel's first member here: every router routes it here
            // (the count, then a barrier) before the client hears it joined.
            let new_route = count.members() == 1;
            self.links.channels_changed(vec![count]);
            if new_route {
                self.links.all_synced().await;
            }
            // Every router stores the membership, as when a link reports
            // it again, with the member the client named, if any (a
            // presence channel's router then answers the client).
            match member {
                Some(join) => self.links.send_to_all(join.to_frame()),
                None => {
                    let name = bytes::Bytes::from(channel.as_str().to_owned());
                    self.links.send_to_all(Frame::new(FrameKind::ChAdd, encode_ids(&[id]), name));
                }
            }
            self.metrics.count(Count::Subscribed);
        })
    }

    fn unsubscribed(&self, id: SessionId, channel: &Channel) {
        let Some(count) = self.registry.leave_here(id, channel) else { return };
        let name = bytes::Bytes::from(channel.as_str().to_owned());
        self.links.send_to_all(Frame::new(FrameKind::ChDel, encode_ids(&[id]), name));
        self.links.channels_changed(vec![count]);
    }

    fn relay(&self, id: SessionId, channel: Channel, envelope: bytes::Bytes) -> bool {
        let publish = protocol::cmd::PublishExcept {
            channel,
            except: vec![id],
            payload: protocol::cmd::Payload { data: envelope, binary: false },
        };
        let relayed = self.links.send_to_any(publish.to_frame());
        if relayed {
            self.metrics.count(Count::ClientEventsRelayed);
        }
        relayed
    }

    fn signed_in(&self, id: SessionId, user: &str) {
        self.registry.note_user(id, user);
        let user = bytes::Bytes::from(user.to_owned());
        self.links.send_to_all(Frame::new(FrameKind::Bind, encode_ids(&[id]), user));
    }

    fn away(&self, id: SessionId, away: bool) {
        let kind = if away { FrameKind::SessionsAway } else { FrameKind::SessionsBack };
        self.links.send_to_all(Frame::new(kind, bytes::Bytes::copy_from_slice(id.as_bytes()), bytes::Bytes::new()));
    }
}
