//! What the operator's page shows, kept by the hub as it happens: each
//! linked gateway's last report and heartbeat, the cut-offs, the store's
//! health, and the traffic of the last minutes, a point a second. The
//! page reads it summarised (see `admin`): nothing here grows with the
//! sessions or channels.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use protocol::{Frame, FrameKind, GatewayStatus, SessionDescription, SessionId};
use serde::Serialize;
use tokio::sync::oneshot;

use super::{Hub, LinkId};
use crate::metrics::Count;
use crate::outbound::CutOff;

/// Traffic points kept: five minutes, one a second.
const POINTS: usize = 300;
/// Cut-offs remembered.
const CUTS: usize = 50;
/// How long a gateway cut off and not back, or events given up, stay a problem.
const PROBLEM_FOR: u64 = 600;

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Default)]
pub struct Watch {
    inner: Mutex<Record>,
    /// Lookups waiting for a gateway to describe a session.
    describing: Mutex<HashMap<SessionId, Vec<oneshot::Sender<SessionDescription>>>>,
}

#[derive(Default)]
struct Record {
    cuts: VecDeque<Cut>,
    store_down_since: Option<u64>,
    points: VecDeque<Point>,
    /// The running counts at the last point, to make rates of.
    last: Option<Totals>,
    /// Since when each backend (`gateway backend`) has been seen ejected.
    ejected_since: HashMap<String, u64>,
    /// Every router that shares the store, as each last said.
    routers: Vec<RouterView>,
    /// Per gateway: its events given up, and since when and till when they grew.
    given_up: HashMap<String, (u64, Option<(u64, u64)>)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Cut {
    pub gateway: String,
    pub reason: &'static str,
    pub at: u64,
}

/// One second of traffic.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Point {
    pub t: u64,
    pub deliveries: u64,
    pub commands: u64,
    pub connects: u64,
    pub closes: u64,
    pub messages_in: u64,
    pub messages_out: u64,
}

/// Running counts, router's and gateways' together.
#[derive(Clone, Copy, Default)]
struct Totals {
    deliveries: u64,
    commands: u64,
    connects: u64,
    closes: u64,
    messages_in: u64,
    messages_out: u64,
}

/// A router as it reports itself in the store, once a second.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct RouterView {
    #[serde(default)]
    pub name: String,
    pub http: String,
    pub started: u64,
    pub seen: u64,
    pub gateways: usize,
    pub sessions: usize,
}

/// Routes one look of the page reads at most (see [`Hub::channels_view`]).
pub const SCANNED: usize = 10_000;

/// Channels as the page shows them: how many match, whether only some
/// were looked at, and the largest, by name with their members.
pub struct ChannelsView {
    pub count: usize,
    pub sampled: bool,
    pub top: Vec<(String, u64)>,
}

/// A router not seen for this long (it reports every second) is a problem.
const ROUTER_SILENT_AFTER: u64 = 5;

/// A linked gateway as the page shows it.
#[derive(Debug, Serialize)]
pub struct GatewayView {
    pub gateway: String,
    pub sessions: usize,
    pub queued_bytes: usize,
    pub queue_limit: usize,
    pub heartbeat_age_ms: u64,
    pub linked_s: u64,
    pub status: Option<GatewayStatus>,
}

/// Something wrong, and since when.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub what: String,
    pub since: u64,
}

impl Hub {
    /// A gateway's heartbeat came.
    pub fn gateway_heard(&self, link: LinkId, now: std::time::Instant) {
        if let Some(gw) = self.links.lock().unwrap().gateways.get_mut(&link) {
            gw.heard = now;
        }
    }

    /// A gateway's report came (STATUS): kept for the page, and its
    /// ejected backends and events given up noted since when.
    pub fn gateway_status(&self, link: LinkId, status: GatewayStatus, heard: std::time::Instant) {
        let now = unix_now();
        let key = {
            let mut links = self.links.lock().unwrap();
            let Some(gw) = links.gateways.get_mut(&link) else { return };
            gw.heard = heard;
            let key = gw.key.clone();
            gw.status = Some(status.clone());
            key
        };
        let mut record = self.watch.inner.lock().unwrap();
        let own = format!("{key} ");
        record.ejected_since.retain(|backend, _| !backend.starts_with(&own));
        for backend in status.backends.iter().filter(|b| b.ejected) {
            let name = format!("{key} {}={}", backend.pool, backend.backend);
            record.ejected_since.entry(name).or_insert(now);
        }
        let (count, grew) = record.given_up.entry(key).or_insert((status.events_given_up, None));
        if status.events_given_up > *count {
            *grew = match *grew {
                Some((first, last)) if now.saturating_sub(last) < PROBLEM_FOR => Some((first, now)),
                _ => Some((now, now)),
            };
        }
        *count = status.events_given_up;
    }

    /// What the page kept of a gateway that unlinked: its ejected backends
    /// and events given up (its report went with its link). A gateway that
    /// links again reports afresh.
    pub(super) fn forget_gateway(&self, key: &str) {
        let mut record = self.watch.inner.lock().unwrap();
        let own = format!("{key} ");
        record.ejected_since.retain(|backend, _| !backend.starts_with(&own));
        record.given_up.remove(key);
    }

    /// A gateway was cut off.
    pub fn note_cut_off(&self, link_key: &str, why: CutOff) {
        let mut record = self.watch.inner.lock().unwrap();
        if record.cuts.len() == CUTS {
            record.cuts.pop_front();
        }
        record.cuts.push_back(Cut { gateway: link_key.to_owned(), reason: why.label(), at: unix_now() });
    }

    /// Whether the store answered the last check (the router's lease renewal).
    pub fn note_store(&self, ok: bool) {
        let mut record = self.watch.inner.lock().unwrap();
        match ok {
            true => record.store_down_since = None,
            false => {
                record.store_down_since.get_or_insert(unix_now());
            }
        }
    }

    /// Takes a traffic point: what the counts grew by since the last.
    pub fn sample_traffic(&self) {
        let (messages_in, messages_out) = {
            let links = self.links.lock().unwrap();
            let reports = links.gateways.values().filter_map(|gw| gw.status.as_ref());
            reports.fold((0, 0), |(i, o), s| (i + s.messages_in, o + s.messages_out))
        };
        let now = Totals {
            deliveries: self.metrics.get(Count::Deliveries),
            commands: self.metrics.commands(),
            connects: self.metrics.get(Count::SessionsOpened),
            closes: self.metrics.get(Count::SessionsEnded),
            messages_in,
            messages_out,
        };
        let mut record = self.watch.inner.lock().unwrap();
        if let Some(last) = record.last {
            // A gateway that went or restarted lowers its sum: no negative rate.
            let point = Point {
                t: unix_now(),
                deliveries: now.deliveries.saturating_sub(last.deliveries),
                commands: now.commands.saturating_sub(last.commands),
                connects: now.connects.saturating_sub(last.connects),
                closes: now.closes.saturating_sub(last.closes),
                messages_in: now.messages_in.saturating_sub(last.messages_in),
                messages_out: now.messages_out.saturating_sub(last.messages_out),
            };
            if record.points.len() == POINTS {
                record.points.pop_front();
            }
            record.points.push_back(point);
        }
        record.last = Some(now);
    }

    /// This router's report for the store: who it is, and what it holds.
    pub fn router_report(&self, http: &str, started: u64) -> String {
        let links = self.links.lock().unwrap();
        let report = RouterView {
            name: String::new(),
            http: http.to_owned(),
            started,
            seen: unix_now(),
            gateways: links.gateways.len(),
            sessions: links.sessions.len(),
        };
        serde_json::to_string(&report).expect("a report serializes")
    }

    /// Every router's report, as the store gave them, by name.
    pub fn note_routers(&self, reports: Vec<(String, String)>) {
        let mut routers: Vec<RouterView> = reports
            .into_iter()
            .filter_map(|(name, report)| Some(RouterView { name, ..serde_json::from_str(&report).ok()? }))
            .collect();
        routers.sort_by(|a, b| a.name.cmp(&b.name));
        self.watch.inner.lock().unwrap().routers = routers;
    }

    pub fn routers(&self) -> Vec<RouterView> {
        self.watch.inner.lock().unwrap().routers.clone()
    }

    pub fn traffic(&self) -> Vec<Point> {
        self.watch.inner.lock().unwrap().points.iter().copied().collect()
    }

    pub fn cut_offs(&self) -> Vec<Cut> {
        self.watch.inner.lock().unwrap().cuts.iter().rev().cloned().collect()
    }

    /// The linked gateways, by key.
    pub fn gateways_view(&self) -> Vec<GatewayView> {
        let links = self.links.lock().unwrap();
        let mut gateways: Vec<GatewayView> = links
            .gateways
            .values()
            .map(|gw| GatewayView {
                gateway: gw.key.clone(),
                sessions: gw.sessions,
                queued_bytes: gw.outbound.queued_bytes(),
                queue_limit: gw.outbound.max_bytes(),
                heartbeat_age_ms: gw.heard.elapsed().as_millis() as u64,
                linked_s: gw.linked.elapsed().as_secs(),
                status: gw.status.clone(),
            })
            .collect();
        gateways.sort_by(|a, b| a.gateway.cmp(&b.gateway));
        gateways
    }

    /// What is wrong now, the oldest first: the store down, gateways cut
    /// off and not back (for ten minutes), gateways silent, backends ejected
    /// at linked gateways, events given up there in the last ten minutes.
    pub fn problems(&self, silent_after: Duration) -> Vec<Problem> {
        let linked: Vec<(String, Duration)> = {
            let links = self.links.lock().unwrap();
            links.gateways.values().map(|gw| (gw.key.clone(), gw.heard.elapsed())).collect()
        };
        let now = unix_now();
        let record = self.watch.inner.lock().unwrap();
        let mut problems = Vec::new();
        if let Some(since) = record.store_down_since {
            problems.push(Problem { what: "the store (Redis) does not answer".into(), since });
        }
        for router in record.routers.iter().filter(|r| now.saturating_sub(r.seen) > ROUTER_SILENT_AFTER) {
            problems.push(Problem { what: format!("router {} silent", router.name), since: router.seen });
        }
        let is_linked = |gateway: &str| linked.iter().any(|(key, _)| key == gateway);
        let recent = |at: u64| now.saturating_sub(at) < PROBLEM_FOR;
        for cut in record.cuts.iter().filter(|cut| !is_linked(&cut.gateway) && recent(cut.at)) {
            if !problems.iter().any(|p: &Problem| p.what.starts_with(&format!("gateway {} ", cut.gateway))) {
                problems.push(Problem {
                    what: format!("gateway {} cut off ({}), not linked since", cut.gateway, cut.reason),
                    since: cut.at,
                });
            }
        }
        for (key, heard) in linked.iter().filter(|(_, heard)| *heard > silent_after) {
            problems.push(Problem {
                what: format!("gateway {key} silent for {} s", heard.as_secs()),
                since: now - heard.as_secs(),
            });
        }
        for (backend, since) in &record.ejected_since {
            let (gateway, backend) = backend.split_once(' ').unwrap_or(("", backend));
            if is_linked(gateway) {
                problems
                    .push(Problem { what: format!("backend {backend} ejected at gateway {gateway}"), since: *since });
            }
        }
        for (gateway, (_, grew)) in record.given_up.iter().filter(|(gateway, _)| is_linked(gateway)) {
            if let Some((since, _)) = grew.filter(|(_, last)| recent(*last)) {
                problems.push(Problem { what: format!("events given up at gateway {gateway}"), since });
            }
        }
        problems.sort_by_key(|p| p.since);
        problems
    }

    /// Channels with members on the linked gateways: how many match
    /// `prefix`, and the largest `limit` of them by members, from a look at
    /// [`SCANNED`] routes at most: the publish path's lock is held that
    /// long, however many there are (`sampled` says the look was partial).
    pub fn channels_view(&self, prefix: &str, limit: usize) -> ChannelsView {
        let links = self.links.lock().unwrap();
        let mut top: Vec<(u64, &str)> = Vec::with_capacity(limit + 1);
        let mut matching = 0;
        for (name, routes) in links.routes.iter().take(SCANNED).filter(|(name, _)| name.starts_with(prefix)) {
            matching += 1;
            let members = routes.values().map(|r| u64::from(r.members)).sum();
            let place = top.partition_point(|(m, n)| (*m, std::cmp::Reverse(*n)) > (members, std::cmp::Reverse(name)));
            if place < limit {
                top.insert(place, (members, name));
                top.truncate(limit);
            }
        }
        let sampled = links.routes.len() > SCANNED;
        let count = if prefix.is_empty() { links.routes.len() } else { matching };
        let top = top.into_iter().map(|(members, name)| (name.to_owned(), members)).collect();
        ChannelsView { count, sampled, top }
    }

    /// The gateway that holds a session, by key.
    pub fn holder_key(&self, session: &protocol::SessionId) -> Option<String> {
        let links = self.links.lock().unwrap();
        links.sessions.get(session).and_then(|link| links.gateways.get(link)).map(|gw| gw.key.clone())
    }

    /// Asks the gateways that hold `ids` to describe them (DESCRIBE); each
    /// answer that came within `wait`, in order.
    pub async fn describe(&self, ids: &[SessionId], wait: Duration) -> Vec<Option<SessionDescription>> {
        let asked: Vec<Option<oneshot::Receiver<SessionDescription>>> = {
            let links = self.links.lock().unwrap();
            let mut describing = self.watch.describing.lock().unwrap();
            ids.iter()
                .map(|id| {
                    let holder = links.sessions.get(id).and_then(|link| links.gateways.get(link))?;
                    let frame = Frame::new(FrameKind::Describe, Bytes::copy_from_slice(id.as_bytes()), Bytes::new());
                    if !self.queue(holder, vec![frame]) {
                        return None;
                    }
                    let (reply, answer) = oneshot::channel();
                    describing.entry(*id).or_default().push(reply);
                    Some(answer)
                })
                .collect()
        };
        let answers = futures_util::future::join_all(
            asked.into_iter().map(|answer| async move { tokio::time::timeout(wait, answer?).await.ok()?.ok() }),
        )
        .await;
        self.watch.describing.lock().unwrap().retain(|_, waiting| {
            waiting.retain(|reply| !reply.is_closed());
            !waiting.is_empty()
        });
        answers
    }

    /// A gateway described a session it holds.
    pub fn described(&self, link: LinkId, session: SessionId, description: SessionDescription) {
        if self.held_by(link, &[session]).is_empty() {
            return self.refuse_gateway_frame(link, "DESCRIBED of a session another gateway holds", &session);
        }
        for reply in self.watch.describing.lock().unwrap().remove(&session).unwrap_or_default() {
            let _ = reply.send(description.clone());
        }
    }

    /// Asks the gateway named `key` to drain; false if none such is linked.
    pub fn drain(&self, key: &str) -> bool {
        let links = self.links.lock().unwrap();
        let frame = protocol::Frame::new(protocol::FrameKind::Drain, bytes::Bytes::new(), bytes::Bytes::new());
        links.gateways.values().filter(|gw| gw.key == key).any(|gw| self.queue(gw, vec![frame.clone()]))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use protocol::handover::GatewayId;
    use protocol::BackendStatus;

    use super::*;
    use crate::outbound::Outbound;
    use crate::store::history::Rules;
    use crate::store::Store;

    fn whats(hub: &Hub) -> Vec<String> {
        hub.problems(Duration::from_secs(60)).into_iter().map(|p| p.what).collect()
    }

    #[test]
    fn problems_are_what_is_wrong_now_at_linked_gateways() {
        let hub = Hub::new(Store::Memory(Box::default()), 1 << 20, Rules::default(), Default::default());
        let link = hub.attach_gateway(
            GatewayId { server_id: 1, worker_id: 2 },
            Arc::new(Outbound::new(1 << 20)),
            std::time::Instant::now(),
        );
        assert!(whats(&hub).is_empty());
        let backend = BackendStatus {
            pool: "default".into(),
            backend: "10.0.0.9:9000".into(),
            ejected: true,
            ..Default::default()
        };
        let status = GatewayStatus { backends: vec![backend], events_given_up: 1, ..Default::default() };
        hub.gateway_status(link, status, std::time::Instant::now());
        assert_eq!(
            whats(&hub),
            ["backend default=10.0.0.9:9000 ejected at gateway 1:2"],
            "given up once, before: no news"
        );
        hub.gateway_status(link, GatewayStatus { events_given_up: 3, ..Default::default() }, std::time::Instant::now());
        assert_eq!(whats(&hub), ["events given up at gateway 1:2"], "the backend is back, events were given up");
        hub.note_store(false);
        hub.note_cut_off("1:2", CutOff::QueueFull);
        hub.note_cut_off("5:5", CutOff::Stalled);
        let mut now = whats(&hub);
        now.sort();
        let expected = [
            "events given up at gateway 1:2",
            "gateway 5:5 cut off (stalled), not linked since",
            "the store (Redis) does not answer",
        ];
        assert_eq!(now, expected, "1:2 is linked, so its cut-off is over");
        hub.note_store(true);
        hub.detach_gateway(link);
        assert_eq!(whats(&hub).len(), 2, "1:2 cut off and gone; 5:5 too; nothing of 1:2's backends");
    }
}
