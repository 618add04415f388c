//! The gateway's counters, each an atomic bumped where the thing happens,
//! and their Prometheus exposition for the admin listener.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use runtime::metrics::Exposition;

use crate::base::close::CloseReason;
use crate::upstream::fastcgi::Upstreams;

/// What the gateway holds now, read for one exposition.
pub struct Gauges<'a> {
    pub sessions: f64,
    pub handshakes: f64,
    pub backend_inflight_bytes: f64,
    pub links_up: f64,
    pub link_queued_events: f64,
    pub unreported_closes: f64,
    pub silent_routers: u64,
    pub link_overflows: u64,
    pub closes_lost: u64,
    pub pushes_queued: u64,
    pub offline: f64,
    pub resume_buffered_bytes: f64,
    pub resume_budget_dropped: u64,
    pub outbound_queued_bytes: f64,
    pub upstreams: &'a Upstreams,
}

#[derive(Default)]
pub struct Metrics {
    pub connections_opened: AtomicU64,
    pub refused_origin: AtomicU64,
    pub refused_ip_rate: AtomicU64,
    pub refused_ip_connections: AtomicU64,
    pub refused_headers: AtomicU64,
    pub refused_full: AtomicU64,
    pub closes: [AtomicU64; CloseReason::ALL.len()],
    pub connect_refused_by_backend: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_refused_in_flight: AtomicU64,
    pub replies_out: AtomicU64,
    pub backend_timeouts: AtomicU64,
    pub backend_failures: AtomicU64,
    pub backend_responses_too_large: AtomicU64,
    /// Bytes of client messages queued for the backends, in all sessions.
    pub pending_bytes: std::sync::atomic::AtomicUsize,
    /// The connection params all sessions hold (address, URI, headers).
    pub params_bytes: std::sync::atomic::AtomicUsize,
    /// The size of a WebSocket session's future, which its task holds.
    pub session_future_bytes: std::sync::atomic::AtomicUsize,
    pub tls_handshake_failures: AtomicU64,
    pub tls_reloads: AtomicU64,
    pub tls_reload_failures: AtomicU64,
    pub event_retries: AtomicU64,
    pub close_events_given_up: AtomicU64,
    pub offline_events_given_up: AtomicU64,
    pub parked: AtomicU64,
    pub resumed: AtomicU64,
    pub moved_out: AtomicU64,
}

impl Metrics {
    pub fn closed(&self, reason: CloseReason) {
        self.closes[reason.index()].fetch_add(1, Relaxed);
    }

    /// Counts a backend request that failed, by how.
    pub fn backend_failed(&self, err: &crate::upstream::fastcgi::UpstreamError) {
        use crate::upstream::fastcgi::UpstreamError;
        let counter = match err {
            UpstreamError::Timeout { .. } => &self.backend_timeouts,
            UpstreamError::ResponseTooLarge { .. } => {
                self.backend_responses_too_large.fetch_add(1, Relaxed);
                &self.backend_failures
            }
            _ => &self.backend_failures,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn render(&self, now: Gauges) -> String {
        let mut out = Exposition::default();
        let get = |c: &AtomicU64| c.load(Relaxed) as f64;
        out.gauge("gateway_sessions", "Sessions open now.", now.sessions);
        out.gauge(
            "gateway_handshakes",
            "Connections not yet sessions (TLS handshake, HTTP requests, upgrade), at most --max-handshakes.",
            now.handshakes,
        );
        out.counter(
            "gateway_connections_opened_total",
            "Client connections that became sessions.",
            self.connections_opened.load(Relaxed),
        );
        let refused = [
            ("origin", &self.refused_origin),
            ("ip_rate", &self.refused_ip_rate),
            ("ip_connections", &self.refused_ip_connections),
            ("headers_too_large", &self.refused_headers),
            ("max_connections", &self.refused_full),
        ];
        let refused = refused.iter().map(|(reason, c)| (vec![("reason", reason.to_string())], get(c))).collect();
        out.family(
            "gateway_connections_refused_total",
            "Connections refused before they became sessions.",
            "counter",
            refused,
        );
        let closes = CloseReason::ALL
            .iter()
            .map(|r| (vec![("reason", r.label().to_owned())], get(&self.closes[r.index()])))
            .collect();
        out.family("gateway_client_closes_total", "Clients the gateway closed, by reason.", "counter", closes);
        out.counter(
            "gateway_connect_refused_total",
            "Connect events the backend answered with a non-2xx status.",
            self.connect_refused_by_backend.load(Relaxed),
        );
        out.counter("gateway_messages_in_total", "Messages from clients.", self.messages_in.load(Relaxed));
        out.counter(
            "gateway_messages_refused_total",
            "Messages refused because too many were in flight for their session.",
            self.messages_refused_in_flight.load(Relaxed),
        );
        out.counter("gateway_replies_out_total", "Backend replies sent to clients.", self.replies_out.load(Relaxed));
        out.counter(
            "gateway_backend_timeouts_total",
            "Backend requests that timed out.",
            self.backend_timeouts.load(Relaxed),
        );
        out.counter(
            "gateway_backend_failures_total",
            "Backend requests that failed otherwise.",
            self.backend_failures.load(Relaxed),
        );
        out.counter(
            "gateway_backend_responses_too_large_total",
            "Backend responses cut off at --max-response-bytes (also counted as failures).",
            self.backend_responses_too_large.load(Relaxed),
        );
        out.gauge(
            "gateway_backend_inflight_bytes",
            "Request bytes in flight to the backends now (at most --backend-inflight-bytes).",
            now.backend_inflight_bytes,
        );
        out.gauge(
            "gateway_pending_bytes",
            "Bytes of client messages waiting for the backend, in all sessions.",
            self.pending_bytes.load(Relaxed) as f64,
        );
        out.gauge(
            "gateway_params_bytes",
            "Bytes of connection params (address, URI, headers) the sessions hold.",
            self.params_bytes.load(Relaxed) as f64,
        );
        out.gauge(
            "gateway_session_future_bytes",
            "The size of a WebSocket session's future, the bulk of its task (0 before the first).",
            self.session_future_bytes.load(Relaxed) as f64,
        );
        out.counter(
            "gateway_tls_handshake_failures_total",
            "TLS handshakes on --listen-tls that failed or timed out.",
            self.tls_handshake_failures.load(Relaxed),
        );
        out.counter(
            "gateway_tls_reloads_total",
            "Certificate reloads on SIGHUP that took effect.",
            self.tls_reloads.load(Relaxed),
        );
        out.counter(
            "gateway_tls_reload_failures_total",
            "Certificate reloads on SIGHUP that failed (the certificate in use stayed).",
            self.tls_reload_failures.load(Relaxed),
        );
        out.counter(
            "gateway_event_retries_total",
            "Close and offline events sent again because the backend looked down.",
            self.event_retries.load(Relaxed),
        );
        let given_up = [("close", &self.close_events_given_up), ("offline", &self.offline_events_given_up)];
        out.family(
            "gateway_events_given_up_total",
            "Close and offline events given up after --event-retry-ms of a backend down.",
            "counter",
            given_up.iter().map(|(event, c)| (vec![("event", event.to_string())], get(c))).collect(),
        );
        out.counter(
            "gateway_sessions_parked_total",
            "Resumable sessions whose client dropped and that waited for a resume.",
            self.parked.load(Relaxed),
        );
        out.counter("gateway_sessions_resumed_total", "Sessions a client resumed here.", self.resumed.load(Relaxed));
        out.counter(
            "gateway_sessions_moved_out_total",
            "Sessions handed to a client that resumed them on another gateway.",
            self.moved_out.load(Relaxed),
        );
        out.gauge("gateway_router_links_up", "Router links up now.", now.links_up);
        out.gauge(
            "gateway_router_link_queued_events",
            "Session starts, ends and frames waiting to go out on the router links.",
            now.link_queued_events,
        );
        out.gauge(
            "gateway_router_unreported_closes",
            "Sessions that ended while a router link was down, to report when it is back.",
            now.unreported_closes,
        );
        out.counter(
            "gateway_router_links_silent_total",
            "Router links dropped because the router said nothing for three of its heartbeats.",
            now.silent_routers,
        );
        out.counter(
            "gateway_router_link_overflows_total",
            "Router links started over because their queue overflowed.",
            now.link_overflows,
        );
        out.counter(
            "gateway_router_closes_lost_total",
            "Session ends no router will hear of (past the unreported bound).",
            now.closes_lost,
        );
        out.counter("gateway_pushes_out_total", "Router pushes queued for clients.", now.pushes_queued);
        out.gauge("gateway_sessions_offline", "Sessions waiting now for their client to resume.", now.offline);
        out.gauge(
            "gateway_resume_buffered_bytes",
            "Bytes kept now for resumes: replay logs and what waits for offline sessions (at most --resume-buffer-total-bytes).",
            now.resume_buffered_bytes,
        );
        out.counter(
            "gateway_resume_budget_dropped_total",
            "Messages a replay log gave up or did not keep because --resume-buffer-total-bytes was reached.",
            now.resume_budget_dropped,
        );
        let (mut open, mut ejected) = (Vec::new(), Vec::new());
        for pool in now.upstreams.pools() {
            for backend in pool.backends() {
                let labels = vec![("pool", pool.name.clone()), ("backend", backend.addr().to_string())];
                open.push((labels.clone(), backend.open_connections() as f64));
                ejected.push((labels, if backend.is_ejected() { 1.0 } else { 0.0 }));
            }
        }
        out.family("gateway_backend_connections", "Open connections to each backend.", "gauge", open);
        out.family("gateway_backend_ejected", "1 while a backend is ejected for failing.", "gauge", ejected);
        out.gauge(
            "gateway_outbound_queued_bytes",
            "Bytes of pushes waiting in all sessions' mailboxes.",
            now.outbound_queued_bytes,
        );
        out.finish()
    }
}
