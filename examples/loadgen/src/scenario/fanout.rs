//! M members of one channel, spread over the gateways; a publisher calls
//! the router. Every member must get every message once, in order.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{open_many, padded};
use crate::proc::CpuSpan;
use crate::report::{histogram, percentiles, record, Report};
use crate::router_api::RouterApi;
use crate::transport::{Conn, Endpoint};
use loadgen::raw_ws::{COMPRESSED_MESSAGES, WIRE_BYTES_IN};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Router HTTP API address, HOST:PORT.
    #[arg(long)]
    pub router: SocketAddr,
    /// Channel members.
    #[arg(short, long, default_value_t = 10_000)]
    pub members: usize,
    /// Messages to publish.
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Message size in bytes.
    #[arg(short, long, default_value_t = 100)]
    pub size: usize,
    /// Pad messages with JSON records (ids, names, numbers, as a game or
    /// chat update would carry) instead of `x`s, so compression sees
    /// realistic text.
    #[arg(long)]
    pub json_payload: bool,
    /// Milliseconds between publishes.
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// A gateway's process id (repeatable): its CPU time from the first
    /// publish to the last delivery is reported per delivery.
    #[arg(long = "gateway-pid")]
    pub gateway_pids: Vec<u32>,
    /// The router's process id: its CPU time per delivery, as for gateways.
    #[arg(long)]
    pub router_pid: Option<u32>,
    /// Publish as fooking's PHP client does, to this binary port: a
    /// connection per call, one after another, no reply (members still
    /// join over --router).
    #[arg(long)]
    pub one_call: Option<SocketAddr>,
}

/// The last message a publisher sends: members stop on it.
const END: &[u8] = b"end";
const MEMBER_TIMEOUT: Duration = Duration::from_secs(30);

struct MemberTally {
    /// Receive time of message k, since the run's base instant.
    received: Vec<Duration>,
    error: Option<String>,
    /// Closed only after every member is done, so closing (and the close
    /// events it sets off) stays out of the delivery figures.
    conn: Conn,
}

/// Members joined to a channel and listening, and the publisher's side.
pub struct Fanout {
    router: RouterApi,
    channel: String,
    size: usize,
    /// Pad with JSON records rather than `x`s.
    pub json_payload: bool,
    base: Instant,
    members: Vec<JoinHandle<MemberTally>>,
    published: Vec<Duration>,
    /// CPU time of the gateways and the router, from the first publish
    /// until every member is done: the fan-out's cost alone, without the
    /// connects, joins and closes around it.
    pub cpu: Option<CpuSpan>,
    /// Publish over this binary port, a connection per call.
    pub one_call: Option<SocketAddr>,
}

impl Fanout {
    /// Opens `count` members (each learns its session id from the backend's
    /// greeting) and joins them to a fresh channel.
    pub async fn join(
        endpoints: &[Endpoint],
        router: SocketAddr,
        count: usize,
        size: usize,
        report: &mut Report,
    ) -> anyhow::Result<Fanout> {
        let (conns, failures) = open_many(endpoints, count, 500, true).await;
        failures.into_iter().for_each(|f| report.error(f));
        let greeted: Vec<_> = conns
            .into_iter()
            .map(|mut conn| {
                tokio::spawn(async move {
                    let id = conn.recv_within(Duration::from_secs(10)).await?;
                    anyhow::Ok((conn, String::from_utf8(id.to_vec())?))
                })
            })
            .collect();
        let mut conns = Vec::new();
        let mut ids = Vec::new();
        for task in greeted {
            match task.await? {
                Ok((conn, id)) => {
                    conns.push(conn);
                    ids.push(id);
                }
                Err(e) => report.error(format!("no greeting (run the echo backend with --greet): {e:#}")),
            }
        }
        let channel = format!("loadgen-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
        let mut router = RouterApi::new(router);
        router.join(&channel, &ids).await?;
        let base = Instant::now();
        let members = conns.into_iter().enumerate().map(|(i, conn)| tokio::spawn(listen(i, conn, base))).collect();
        let published = Vec::new();
        Ok(Fanout { router, channel, size, json_payload: false, base, members, published, cpu: None, one_call: None })
    }

    pub async fn publish_next(&mut self) -> anyhow::Result<()> {
        let sent_at = self.base.elapsed();
        let k = self.published.len();
        let prefix = format!("{k}:{}:", sent_at.as_nanos());
        let payload = if self.json_payload { json_padded(prefix, self.size, k) } else { padded(prefix, self.size) };
        self.published.push(sent_at);
        self.publish(std::str::from_utf8(&payload)?).await
    }

    async fn publish(&mut self, data: &str) -> anyhow::Result<()> {
        match self.one_call {
            Some(addr) => RouterApi::publish_one_call(addr, &self.channel, data).await,
            None => self.router.publish(&self.channel, data).await.map(drop),
        }
    }

    /// Sends the end marker, collects every member, and reports.
    pub async fn finish(mut self, report: &mut Report, prefix: &str) -> anyhow::Result<()> {
        self.publish(std::str::from_utf8(END)?).await?;
        let expected = self.published.len();
        let (mut per_message, mut per_delivery) = (histogram(), histogram());
        let mut last_of = vec![Duration::ZERO; expected];
        let mut deliveries = 0usize;
        let members = self.members.len();
        let mut tallies = Vec::with_capacity(members);
        for member in self.members {
            tallies.push(member.await?);
        }
        let cpu = self.cpu.as_ref().map(CpuSpan::spent).transpose()?;
        eprintln!("fanout: all members done");
        let mut closing = Vec::with_capacity(members);
        for (i, tally) in tallies.into_iter().enumerate() {
            closing.push(tokio::spawn(tally.conn.close()));
            if let Some(error) = tally.error {
                report.error(error);
            } else if tally.received.len() != expected {
                report.error(format!("member {i}: got {} of {expected} messages", tally.received.len()));
            }
            deliveries += tally.received.len();
            for (k, at) in tally.received.iter().enumerate() {
                record(&mut per_delivery, at.saturating_sub(self.published[k]));
                last_of[k] = last_of[k].max(*at);
            }
        }
        for close in closing {
            close.await?;
        }
        for (k, last) in last_of.iter().enumerate() {
            record(&mut per_message, last.saturating_sub(self.published[k]));
        }
        let span = last_of
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .saturating_sub(self.published.first().copied().unwrap_or_default());
        report.set(&format!("{prefix}members"), members);
        report.set(&format!("{prefix}messages"), expected);
        report.set(&format!("{prefix}deliveries"), deliveries);
        report.set(&format!("{prefix}deliveries_per_s"), (deliveries as f64 / span.as_secs_f64().max(1e-9)).round());
        for (name, spent) in cpu.unwrap_or_default() {
            let per_delivery = spent.as_secs_f64() * 1e6 / deliveries.max(1) as f64;
            report.set(&format!("{prefix}{name}_cpu_us_per_delivery"), (per_delivery * 100.0).round() / 100.0);
        }
        percentiles(report, &format!("{prefix}publish_to_last_delivery_"), &per_message);
        percentiles(report, &format!("{prefix}delivery_latency_"), &per_delivery);
        Ok(())
    }
}

/// Reads messages 0, 1, 2… until the end marker; any gap, repeat or
/// reordering is an error.
async fn listen(i: usize, conn: Conn, base: Instant) -> MemberTally {
    let mut tally = MemberTally { received: Vec::new(), error: None, conn };
    loop {
        let data = match tally.conn.recv_within(MEMBER_TIMEOUT).await {
            Ok(data) => data,
            Err(e) => {
                tally.error = Some(format!("member {i}: {e:#} after {} messages", tally.received.len()));
                break;
            }
        };
        if data == END {
            break;
        }
        let k: Option<usize> = std::str::from_utf8(&data).ok().and_then(|s| s.split(':').next()?.parse().ok());
        if k != Some(tally.received.len()) {
            tally.error = Some(format!("member {i}: expected message {}, got {k:?}", tally.received.len()));
            break;
        }
        tally.received.push(base.elapsed());
    }
    tally
}

pub async fn run(endpoints: &[Endpoint], args: Args) -> anyhow::Result<Report> {
    let mut report = Report::new("fanout");
    let mut fanout = Fanout::join(endpoints, args.router, args.members, args.size, &mut report).await?;
    fanout.json_payload = args.json_payload;
    fanout.one_call = args.one_call;
    report.set("gateways", endpoints.len());
    let mut watched: Vec<(String, u32)> = match args.gateway_pids.as_slice() {
        [one] => vec![("gateway".to_owned(), *one)],
        many => many.iter().enumerate().map(|(i, pid)| (format!("gateway{i}"), *pid)).collect(),
    };
    watched.extend(args.router_pid.map(|pid| ("router".to_owned(), pid)));
    eprintln!("fanout: {} members joined; publishing {} messages", args.members, args.messages);
    fanout.cpu = (!watched.is_empty()).then(|| CpuSpan::start(&watched)).transpose()?;
    for _ in 0..args.messages {
        fanout.publish_next().await?;
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    fanout.finish(&mut report, "").await?;
    let wire_bytes = WIRE_BYTES_IN.load(Relaxed);
    if wire_bytes > 0 {
        report.set("wire_bytes_in", wire_bytes);
        report.set("compressed_messages", COMPRESSED_MESSAGES.load(Relaxed));
    }
    Ok(report)
}

/// `prefix`, then JSON records up to `size` bytes.
fn json_padded(prefix: String, size: usize, k: usize) -> bytes::Bytes {
    let prefix_len = prefix.len();
    let mut text = prefix;
    text.push('[');
    let mut i = 0;
    while text.len() < size {
        let record = format!(
            r#"{{"id":{},"name":"player-{}","x":{},"y":{},"hp":{}}},"#,
            k * 31 + i,
            i,
            (i * 37 + k) % 1000,
            (i * 53 + k * 7) % 1000,
            100 - i % 100
        );
        text.push_str(&record);
        i += 1;
    }
    text.truncate(size.max(prefix_len));
    text.into_bytes().into()
}
