//! The gateway's metrics, declared once: what it counts where things
//! happen (`Count`), what it reads from its state for an exposition
//! (`Now`), and their Prometheus text for the admin listener.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use runtime::metrics::{Counters, Exposition, Snapshot};

use crate::base::close::CloseReason;
use crate::upstream::fastcgi::{UpstreamError, Upstreams};

runtime::metric_table! {
    /// What the gateway counts where it happens.
    pub enum Count {
        ConnectionsOpened: Counter "gateway_connections_opened_total" "Client connections that became sessions.",
        Counter "gateway_connections_refused_total" "Connections refused before they became sessions." by reason {
            RefusedOrigin = "origin",
            RefusedIpRate = "ip_rate",
            RefusedIpConnections = "ip_connections",
            RefusedHeaders = "headers_too_large",
            RefusedFull = "max_connections",
            RefusedAppQuota = "app_max_connections",
        },
        ConnectRefusedByBackend: Counter "gateway_connect_refused_total"
            "Connect events the backend answered with a non-2xx status.",
        MessagesIn: Counter "gateway_messages_in_total" "Messages from clients.",
        MessagesRefusedInFlight: Counter "gateway_messages_refused_total"
            "Messages refused because too many were in flight for their session.",
        RepliesOut: Counter "gateway_replies_out_total" "Backend replies sent to clients.",
        BackendTimeouts: Counter "gateway_backend_timeouts_total" "Backend requests that timed out.",
        BackendFailures: Counter "gateway_backend_failures_total" "Backend requests that failed otherwise.",
        BackendResponsesTooLarge: Counter "gateway_backend_responses_too_large_total"
            "Backend responses cut off at --max-response-bytes (also counted as failures).",
        /// Bytes of client messages queued for the backends, in all sessions.
        PendingBytes: Gauge "gateway_pending_bytes" "Bytes of client messages waiting for the backend, in all sessions.",
        /// The connection params all sessions hold (address, URI, headers).
        ParamsBytes: Gauge "gateway_params_bytes"
            "Bytes of connection params (address, URI, headers) the sessions hold.",
        /// The size of a WebSocket session's future, which its task holds.
        SessionFutureBytes: Gauge "gateway_session_future_bytes"
            "The size of a WebSocket session's future, the bulk of its task (0 before the first).",
        TlsHandshakeFailures: Counter "gateway_tls_handshake_failures_total"
            "TLS handshakes on --listen-tls that failed or timed out.",
        TlsReloads: Counter "gateway_tls_reloads_total" "Certificate reloads on SIGHUP that took effect.",
        TlsReloadFailures: Counter "gateway_tls_reload_failures_total"
            "Certificate reloads on SIGHUP that failed (the certificate in use stayed).",
        EventRetries: Counter "gateway_event_retries_total"
            "Close, offline and occupancy events sent again because the backend looked down.",
        Counter "gateway_events_given_up_total"
            "Close, offline and occupancy events given up after --event-retry-ms of a backend down." by event {
            CloseEventsGivenUp = "close",
            OfflineEventsGivenUp = "offline",
            OccupancyEventsGivenUp = "occupancy",
        },
        Parked: Counter "gateway_sessions_parked_total"
            "Resumable sessions whose client dropped and that waited for a resume.",
        Resumed: Counter "gateway_sessions_resumed_total" "Sessions a client resumed here.",
        MovedOut: Counter "gateway_sessions_moved_out_total"
            "Sessions handed to a client that resumed them on another gateway.",
        Subscribed: Counter "gateway_client_subscribes_total"
            "Channels clients joined by asking, with their backend's yes (--client-subscribe), or a Pusher client with its backend's signature.",
        ClientEventsRelayed: Counter "gateway_client_events_relayed_total"
            "Pusher client events sent to a router for the channel's other members.",
        SubscribesRefused: Counter "gateway_client_subscribes_refused_total"
            "Clients' asks to join a channel the gateway refused without asking the backend: the session in --max-session-channels (429), or --max-channels here (503).",
        OrphanClosesDropped: Counter "gateway_orphan_closes_dropped_total"
            "A dead gateway's sessions whose close event was not sent: past the 1,000,000 waiting at most.",
        SsePosts: Counter "gateway_sse_posts_total" "Messages and closes SSE clients posted to their sessions.",
        SsePostsRefused: Counter "gateway_sse_posts_refused_total"
            "Posts refused for a send token that is invalid or names no session here.",
    }
}

runtime::metric_table! {
    /// What the gateway holds now, read from its state for one exposition.
    pub enum Now {
        Sessions: Gauge "gateway_sessions" "Sessions open now.",
        Handshakes: Gauge "gateway_handshakes"
            "Connections not yet sessions (TLS handshake, HTTP requests, upgrade), at most --max-handshakes.",
        BackendInflightBytes: Gauge "gateway_backend_inflight_bytes"
            "Request bytes in flight to the backends now (at most --backend-inflight-bytes).",
        LinksUp: Gauge "gateway_router_links_up" "Router links up now.",
        LinkQueuedEvents: Gauge "gateway_router_link_queued_events"
            "Session starts, ends and frames waiting to go out on the router links.",
        UnreportedCloses: Gauge "gateway_router_unreported_closes"
            "Sessions that ended while a router link was down, to report when it is back.",
        SilentRouters: Counter "gateway_router_links_silent_total"
            "Router links dropped because the router said nothing for three of its heartbeats.",
        LinkOverflows: Counter "gateway_router_link_overflows_total"
            "Router links started over because their queue overflowed.",
        ClosesLost: Counter "gateway_router_closes_lost_total"
            "Session ends no router will hear of (past the unreported bound).",
        PushesQueued: Counter "gateway_pushes_out_total" "Router pushes queued for clients.",
        Offline: Gauge "gateway_sessions_offline" "Sessions waiting now for their client to resume.",
        SseStreams: Gauge "gateway_sse_streams" "SSE sessions connected now (also counted in gateway_sessions).",
        ResumeBufferedBytes: Gauge "gateway_resume_buffered_bytes"
            "Bytes kept now for resumes: replay logs and what waits for offline sessions (at most --resume-buffer-total-bytes).",
        ResumeBudgetDropped: Counter "gateway_resume_budget_dropped_total"
            "Messages a replay log gave up or did not keep because --resume-buffer-total-bytes was reached.",
        OutboundQueuedBytes: Gauge "gateway_outbound_queued_bytes" "Bytes of pushes waiting in all sessions' mailboxes.",
        HistoryHeld: Counter "gateway_history_live_held_total"
            "Live messages of a kept channel held for a joiner until its history was sent.",
        HistoryRepeatsDropped: Counter "gateway_history_repeats_dropped_total"
            "Live messages of a kept channel not sent to a joiner because its history held them.",
        HistoryHoldsAbandoned: Counter "gateway_history_holds_abandoned_total"
            "Joiners that stopped holding live messages: their history did not end within 5 s, or they held 1,000 messages or 1 MiB.",
        OrphanClosesQueued: Gauge "gateway_orphan_closes_queued"
            "A dead gateway's sessions waiting for the close events this gateway sends for it (1,000 a second, 1,000,000 at most).",
    }
}

#[derive(Default)]
pub struct Metrics {
    counts: Counters<Count>,
    closes: [AtomicU64; CloseReason::ALL.len()],
}

impl Metrics {
    pub fn count(&self, which: Count) {
        self.counts.add(which, 1);
    }

    pub fn add(&self, which: Count, n: usize) {
        self.counts.add(which, n as u64);
    }

    /// A gauge goes down.
    pub fn sub(&self, which: Count, n: usize) {
        self.counts.sub(which, n as u64);
    }

    pub fn set(&self, which: Count, n: usize) {
        self.counts.set(which, n as u64);
    }

    pub fn get(&self, which: Count) -> u64 {
        self.counts.get(which)
    }

    pub fn closed(&self, reason: CloseReason) {
        self.closes[reason.index()].fetch_add(1, Relaxed);
    }

    /// Counts a backend request that failed, by how.
    pub fn backend_failed(&self, err: &UpstreamError) {
        match err {
            UpstreamError::Timeout { .. } => self.count(Count::BackendTimeouts),
            UpstreamError::ResponseTooLarge { .. } => {
                self.count(Count::BackendResponsesTooLarge);
                self.count(Count::BackendFailures);
            }
            _ => self.count(Count::BackendFailures),
        }
    }

    /// Everything, with `now` read from the gateway's state and each
    /// backend's connections and health from `upstreams`.
    pub fn render(&self, now: &Snapshot<Now>, upstreams: &Upstreams) -> String {
        let mut out = Exposition::default();
        self.counts.render(&mut out);
        now.render(&mut out);
        let closes = CloseReason::ALL
            .iter()
            .map(|r| (vec![("reason", r.label().to_owned())], self.closes[r.index()].load(Relaxed) as f64))
            .collect();
        out.family("gateway_client_closes_total", "Clients the gateway closed, by reason.", "counter", closes);
        let (mut open, mut ejected) = (Vec::new(), Vec::new());
        for pool in upstreams.pools() {
            for backend in pool.backends() {
                let labels = vec![("pool", pool.name.clone()), ("backend", backend.addr().to_string())];
                open.push((labels.clone(), backend.open_connections() as f64));
                ejected.push((labels, if backend.is_ejected() { 1.0 } else { 0.0 }));
            }
        }
        out.family("gateway_backend_connections", "Open connections to each backend.", "gauge", open);
        out.family("gateway_backend_ejected", "1 while a backend is ejected for failing.", "gauge", ejected);
        out.finish()
    }
}
