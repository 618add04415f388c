//! The router's counters and their Prometheus exposition.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::outbound::CutOff;
use protocol::cmd::NAMES;
use runtime::metrics::Exposition;

/// What the hub counts now, for the exposition.
pub struct Gauges {
    pub gateways: usize,
    pub sessions: usize,
    pub queued_bytes: usize,
    /// Sessions joined or bound that no gateway has reported yet.
    pub unheld: usize,
    /// (channel, gateway) pairs a publish goes to.
    pub channel_routes: usize,
}

#[derive(Default)]
pub struct RouterMetrics {
    commands: [AtomicU64; NAMES.len()],
    failures: [AtomicU64; NAMES.len()],
    pub refused_unauthenticated: AtomicU64,
    pub bad_frames: AtomicU64,
    pub deliveries: AtomicU64,
    pub gateway_pushes_dropped: AtomicU64,
    pub gateways_cut_off: [AtomicU64; CutOff::ALL.len()],
    pub pushes_too_large: AtomicU64,
    pub gateway_frames_refused: AtomicU64,
    pub unheld_swept: AtomicU64,
}

impl RouterMetrics {
    pub fn command(&self, name: &str, ok: bool) {
        let i = NAMES.iter().position(|n| *n == name).expect("a listed command");
        self.commands[i].fetch_add(1, Relaxed);
        if !ok {
            self.failures[i].fetch_add(1, Relaxed);
        }
    }

    /// The exposition, with the hub's gauges: gateways linked, the
    /// sessions they hold, and the bytes queued for them.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = Exposition::default();
        let Gauges { gateways, sessions, queued_bytes, unheld, channel_routes } = gauges;
        out.gauge("router_gateways", "Gateways linked to this router.", gateways as f64);
        out.gauge("router_sessions", "Sessions on the linked gateways.", sessions as f64);
        let per_command = |counters: &[AtomicU64]| {
            NAMES
                .iter()
                .zip(counters)
                .map(|(name, c)| (vec![("command", name.to_string())], c.load(Relaxed) as f64))
                .collect()
        };
        out.family("router_commands_total", "Commands applied, by name.", "counter", per_command(&self.commands));
        out.family(
            "router_command_failures_total",
            "Commands that failed (store unavailable), by name.",
            "counter",
            per_command(&self.failures),
        );
        out.counter(
            "router_refused_unauthenticated_total",
            "Connections and calls refused for a missing or wrong token.",
            self.refused_unauthenticated.load(Relaxed),
        );
        out.counter(
            "router_bad_frames_total",
            "Connections closed for a malformed or unknown frame.",
            self.bad_frames.load(Relaxed),
        );
        out.counter("router_deliveries_total", "Sessions pushes were sent to.", self.deliveries.load(Relaxed));
        out.counter(
            "router_gateway_pushes_dropped_total",
            "Pushes not queued for a gateway because it was cut off; not counted as delivered.",
            self.gateway_pushes_dropped.load(Relaxed),
        );
        let cut_offs = CutOff::ALL
            .iter()
            .map(|why| {
                (vec![("reason", why.label().to_owned())], self.gateways_cut_off[*why as usize].load(Relaxed) as f64)
            })
            .collect();
        out.family(
            "router_gateways_cut_off_total",
            "Gateway links the router closed: queue full, stalled writes, or silent past three heartbeats.",
            "counter",
            cut_offs,
        );
        out.gauge("router_gateway_queued_bytes", "Bytes queued now for all linked gateways.", queued_bytes as f64);
        out.counter(
            "router_gateway_frames_refused_total",
            "Frames ignored from a gateway: about a session another gateway holds, or an answer to a resume not asked of it.",
            self.gateway_frames_refused.load(Relaxed),
        );
        out.gauge(
            "router_unheld_sessions",
            "Sessions a backend joined or bound that no linked gateway holds, waiting to be reported or swept.",
            unheld as f64,
        );
        out.counter(
            "router_unheld_sessions_swept_total",
            "Sessions whose memberships and user were dropped because no gateway held them within the lease.",
            self.unheld_swept.load(Relaxed),
        );
        out.gauge(
            "router_channel_routes",
            "Channel and gateway pairs a publish goes to: each gateway that holds members of each channel.",
            channel_routes as f64,
        );
        out.counter(
            "router_pushes_too_large_total",
            "Pushes refused because their payload passed the frame limit.",
            self.pushes_too_large.load(Relaxed),
        );
        out.finish()
    }
}
