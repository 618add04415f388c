//! The router's metrics, declared once: what it counts where things happen
//! (`Count`, and each command by name), what it reads from the hub for an
//! exposition (`Now`), and their Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::outbound::CutOff;
use protocol::cmd::NAMES;
use runtime::metrics::{Counters, Exposition, Snapshot};

runtime::metric_table! {
    /// What the router counts where it happens.
    pub enum Count {
        RefusedUnauthenticated: Counter "router_refused_unauthenticated_total"
            "Connections and calls refused for a missing or wrong token.",
        RefusedCrossSite: Counter "router_http_refused_total"
            "HTTP calls refused before their token was looked at: a Host the router does not answer to, a call from a page of another site, or a change without Content-Type: application/json.",
        BadFrames: Counter "router_bad_frames_total" "Connections closed for a malformed or unknown frame.",
        Deliveries: Counter "router_deliveries_total" "Sessions pushes were sent to.",
        GatewayPushesDropped: Counter "router_gateway_pushes_dropped_total"
            "Pushes not queued for a gateway because it was cut off; not counted as delivered.",
        Counter "router_gateways_cut_off_total"
            "Gateway links the router closed: queue full, stalled writes, or silent past three heartbeats." by reason {
            CutOffQueueFull = "queue_full",
            CutOffStalled = "stalled",
            CutOffSilent = "silent",
        },
        GatewayFramesRefused: Counter "router_gateway_frames_refused_total"
            "Frames ignored from a gateway: about a session another gateway holds, or an answer to a resume not asked of it.",
        RoutesRefused: Counter "router_routes_refused_total"
            "Channels a gateway said it holds members of that were not routed to it: past --max-channels-per-gateway or --max-routed-channels. Their publishes reach it only through this router's own joins.",
        UnheldSwept: Counter "router_unheld_sessions_swept_total"
            "Sessions whose memberships and user were dropped because no gateway held them within the lease.",
        FramesTooLarge: Counter "router_frames_too_large_total"
            "Frames not sent to a gateway because they passed its frame limit (a bug if it grows: every sender bounds its own).",
        PushesTooLarge: Counter "router_pushes_too_large_total"
            "Pushes refused because their payload passed the frame limit.",
        ClientEventsRelayed: Counter "router_client_events_relayed_total"
            "Pusher client events a gateway let through, published to their channel's other members.",
        PusherApiCalls: Counter "router_pusher_api_calls_total"
            "Calls to the Pusher HTTP API (/apps/...) that were signed and applied.",
        PusherApiRefused: Counter "router_pusher_api_refused_total"
            "Calls to the Pusher HTTP API refused: unknown app or key, an old timestamp, a wrong body_md5 or signature, a bad body.",
        WebhookEventsSent: Counter "router_webhook_events_sent_total"
            "Pusher webhook events a receiver took (a 2xx).",
        WebhookEventsGivenUp: Counter "router_webhook_events_given_up_total"
            "Pusher webhook events not taken within 30 s of tries.",
        WebhookEventsDropped: Counter "router_webhook_events_dropped_total"
            "Pusher webhook events dropped: their app's queue (10,000) was full.",
        PresenceEvents: Counter "router_presence_events_total"
            "Presence events (join, leave, offline, online) published to presence channels.",
        HistoryAppended: Counter "router_history_appended_total" "Messages kept in a channel's history.",
        HistoryTrimmed: Counter "router_history_trimmed_total"
            "Kept messages dropped to stay within a channel's count or bytes (--history, --history-max-bytes).",
        HistoryEvicted: Counter "router_history_evicted_total"
            "Kept channels dropped whole, those published to longest ago first, to stay within --history-total-bytes.",
        HistoryTooLarge: Counter "router_history_too_large_total"
            "Messages published live but not kept: larger than --history-max-bytes.",
        HistoryFailed: Counter "router_history_failed_total"
            "Messages published live but not kept: the store was unavailable.",
        HistorySent: Counter "router_history_sent_total" "Kept messages sent to sessions as they joined.",
        SessionsOpened: Counter "router_sessions_opened_total" "Sessions the linked gateways reported started.",
        SessionsEnded: Counter "router_sessions_ended_total" "Sessions the linked gateways reported ended.",
        OperatorActions: Counter "router_operator_actions_total" "Kicks and drains asked on the operator's page.",
    }
}

runtime::metric_table! {
    /// What the hub holds now, read for one exposition.
    pub enum Now {
        Gateways: Gauge "router_gateways" "Gateways linked to this router.",
        Sessions: Gauge "router_sessions" "Sessions on the linked gateways.",
        QueuedBytes: Gauge "router_gateway_queued_bytes" "Bytes queued now for all linked gateways.",
        Unheld: Gauge "router_unheld_sessions"
            "Sessions a backend joined or bound that no linked gateway holds, waiting to be reported or swept.",
        ChannelRoutes: Gauge "router_channel_routes"
            "Channel and gateway pairs a publish goes to: each gateway that holds members of each channel.",
        HistoryBytes: Gauge "router_history_bytes"
            "What all kept channels cost toward --history-total-bytes, as of the last sweep (once a second).",
    }
}

impl From<CutOff> for Count {
    fn from(why: CutOff) -> Count {
        match why {
            CutOff::QueueFull => Count::CutOffQueueFull,
            CutOff::Stalled => Count::CutOffStalled,
            CutOff::Silent => Count::CutOffSilent,
        }
    }
}

#[derive(Default)]
pub struct RouterMetrics {
    counts: Counters<Count>,
    /// [`Now::HistoryBytes`], as the last sweep found it.
    history_bytes: AtomicU64,
    commands: [AtomicU64; NAMES.len()],
    failures: [AtomicU64; NAMES.len()],
}

impl RouterMetrics {
    pub fn count(&self, which: impl Into<Count>) {
        self.counts.add(which.into(), 1);
    }

    pub fn add(&self, which: Count, n: usize) {
        self.counts.add(which, n as u64);
    }

    pub fn set_history_bytes(&self, bytes: usize) {
        self.history_bytes.store(bytes as u64, Relaxed);
    }

    pub fn history_bytes(&self) -> u64 {
        self.history_bytes.load(Relaxed)
    }

    pub fn get(&self, which: Count) -> u64 {
        self.counts.get(which)
    }

    /// Commands applied so far, all names together.
    pub fn commands(&self) -> u64 {
        self.commands.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub fn command(&self, name: &str, ok: bool) {
        let i = NAMES.iter().position(|n| *n == name).expect("a listed command");
        self.commands[i].fetch_add(1, Relaxed);
        if !ok {
            self.failures[i].fetch_add(1, Relaxed);
        }
    }

    /// The exposition, with what the hub holds `now`.
    pub fn render(&self, now: &Snapshot<Now>) -> String {
        let mut out = Exposition::default();
        now.render(&mut out);
        self.counts.render(&mut out);
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
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cut_off_has_its_own_sample() {
        let metrics = RouterMetrics::default();
        for why in CutOff::ALL {
            metrics.count(why);
        }
        let text = metrics.render(&Snapshot::default());
        for why in CutOff::ALL {
            let sample = format!("router_gateways_cut_off_total{{reason=\"{}\"}} 1\n", why.label());
            assert!(text.contains(&sample), "{sample} in {text}");
        }
    }
}
