//! M members of one channel, spread over the gateways; a publisher calls
//! the router. Every member must get every message once, in order.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{open_many, padded, Watch};
use crate::report::{histogram, percentiles, record, Report};
use crate::router_api::RouterApi;
use crate::transport::{Conn, Endpoint};
use loadgen::proc::{named, CpuSpan};
use loadgen::raw_ws::{COMPRESSED_MESSAGES, WIRE_BYTES_IN};
use protocol::pusher::{App, Envelope};

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
    /// The processes whose CPU time from the first publish to the last
    /// delivery is reported per delivery and per publish, and the Redis
    /// nodes whose commands are counted per publish.
    #[command(flatten)]
    pub watch: Watch,
    /// Publish as fooking's PHP client does, to this binary port: a
    /// connection per call, one after another, no reply (members still
    /// join over --router). Repeat it for several routers: the publishes
    /// take turns, and each router's must arrive in its order.
    #[arg(long)]
    pub one_call: Vec<SocketAddr>,
    /// The channel, shared with other loadgen processes: one descriptor
    /// limit holds at most about 20,000 members, so a larger channel takes
    /// several processes, all but one `--listen-only`.
    #[arg(long)]
    pub channel: Option<String>,
    /// Join and count what arrives, publishing nothing: another process
    /// publishes `--messages` to `--channel`. The members close when stdin
    /// does, so that their closes stay out of the publisher's figures.
    #[arg(long)]
    pub listen_only: bool,
    /// Milliseconds to wait between the joins and the first publish, so
    /// that the CPU time and Redis commands measured are the publishes'
    /// alone (the routers still record the members' connects meanwhile).
    /// With --redis, the commands Redis runs meanwhile (the routers' upkeep)
    /// give the rate taken off in `redis_commands_per_publish_less_upkeep`.
    #[arg(long, default_value_t = 0)]
    pub settle_ms: u64,
    /// Before settling, join members one call at a time, this many calls
    /// (each a member not in the channel yet, to one of 50 others): the
    /// watched processes' CPU time per join, and each call's latency.
    #[arg(long, default_value_t = 0)]
    pub join_calls: usize,
    /// Members are Pusher clients of this app, `ID:KEY:SECRET` (give --url
    /// as ws://HOST:PORT/app/KEY?protocol=7): each subscribes to the
    /// channel itself, and the publishes go through the router's Pusher
    /// HTTP API, as an SDK's trigger.
    #[arg(long)]
    pub pusher: Option<App>,
}

/// The last message a publisher sends: members stop on it.
const END: &[u8] = b"end";
const MEMBER_TIMEOUT: Duration = Duration::from_secs(30);

struct MemberTally {
    /// Receive time of message k, since the run's base instant, in arrival order.
    received: Vec<(usize, Duration)>,
    /// Messages that came before one published earlier through the same router.
    out_of_order: usize,
    error: Option<String>,
    /// Closed only after every member is done, so closing (and the close
    /// events it sets off) stays out of the delivery figures.
    conn: Conn,
}

/// Redis' calls at the first publish, and at what rate it ran commands in
/// an idle while before (the routers' once-a-second upkeep).
#[derive(Clone)]
pub struct RedisCalls {
    addrs: Vec<SocketAddr>,
    before: u64,
    at: Instant,
    idle_per_s: f64,
}

impl RedisCalls {
    /// Redis commands per publish of `publishes`, less the INFO that read
    /// the count before; and less the routers' upkeep at the idle rate.
    async fn report(self, report: &mut Report, prefix: &str, publishes: usize) -> anyhow::Result<()> {
        let calls = redis_calls(&self.addrs).await?.saturating_sub(self.before) as f64;
        let upkeep = self.idle_per_s * self.at.elapsed().as_secs_f64();
        let per_publish = |calls: f64| (calls / (publishes + 1) as f64 * 100.0).round() / 100.0;
        report.set(&format!("{prefix}redis_commands_per_publish"), per_publish(calls));
        report.set(&format!("{prefix}redis_commands_per_publish_less_upkeep"), per_publish(calls - upkeep));
        Ok(())
    }
}

/// What a member expects: how many messages (`None`: until the end
/// marker), and through how many routers they take turns.
#[derive(Clone, Copy)]
pub struct Expect {
    pub messages: Option<usize>,
    pub routers: usize,
    /// Messages come in Pusher's envelope (the Pusher members).
    pub pusher: bool,
}

/// Members joined to a channel and listening, and the publisher's side.
pub struct Fanout {
    router: RouterApi,
    channel: String,
    /// The members' session ids.
    ids: Vec<String>,
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
    /// Publish over these binary ports, a connection per call, in turn.
    pub one_call: Vec<SocketAddr>,
    /// Redis' calls before the first publish, for its commands per publish.
    pub redis_calls: Option<RedisCalls>,
    /// Publish as this Pusher app's events (members subscribed themselves).
    pusher: Option<App>,
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
        let expect = Expect { messages: None, routers: 1, pusher: false };
        Fanout::join_channel(endpoints, router, None, count, size, expect, report).await
    }

    /// The same, to `channel` if given, members expecting `expect`.
    pub async fn join_channel(
        endpoints: &[Endpoint],
        router: SocketAddr,
        channel: Option<String>,
        count: usize,
        size: usize,
        expect: Expect,
        report: &mut Report,
    ) -> anyhow::Result<Fanout> {
        let opening = Instant::now();
        let (conns, failures) = open_many(endpoints, count, 500, true).await;
        report.set("open_seconds", (opening.elapsed().as_secs_f64() * 100.0).round() / 100.0);
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
        let channel = channel
            .unwrap_or_else(|| format!("loadgen-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos()));
        let mut router = RouterApi::new(router);
        router.join(&channel, &ids).await?;
        let base = Instant::now();
        let members =
            conns.into_iter().enumerate().map(|(i, conn)| tokio::spawn(listen(i, conn, base, expect))).collect();
        let published = Vec::new();
        Ok(Fanout {
            router,
            channel,
            ids,
            size,
            json_payload: false,
            base,
            members,
            published,
            cpu: None,
            one_call: Vec::new(),
            redis_calls: None,
            pusher: None,
        })
    }

    /// `--members` Pusher clients of `app`, each subscribed to the channel
    /// by itself (no router call), listening as `expect` says.
    async fn subscribe_pusher(
        endpoints: &[Endpoint],
        args: &Args,
        app: App,
        expect: Expect,
        report: &mut Report,
    ) -> anyhow::Result<Fanout> {
        let channel = args.channel.clone().unwrap_or_else(|| format!("loadgen-{}", std::process::id()));
        let (conns, failures) = open_many(endpoints, args.members, 500, true).await;
        failures.into_iter().for_each(|f| report.error(f));
        let subscribing: Vec<_> =
            conns.into_iter().map(|conn| tokio::spawn(pusher_subscribe(conn, channel.clone()))).collect();
        let mut conns = Vec::new();
        for task in subscribing {
            match task.await? {
                Ok(conn) => conns.push(conn),
                Err(e) => report.error(format!("a Pusher client did not subscribe: {e:#}")),
            }
        }
        let base = Instant::now();
        let members =
            conns.into_iter().enumerate().map(|(i, conn)| tokio::spawn(listen(i, conn, base, expect))).collect();
        Ok(Fanout {
            router: RouterApi::new(args.router),
            channel,
            ids: Vec::new(),
            size: args.size,
            json_payload: false,
            base,
            members,
            published: Vec::new(),
            cpu: None,
            one_call: Vec::new(),
            redis_calls: None,
            pusher: Some(app),
        })
    }

    /// `calls` joins, one member a call, one after another: what each
    /// watched process spent per join, and the calls' latency.
    async fn measure_joins(
        &mut self,
        watched: &[(String, u32)],
        calls: usize,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let span = CpuSpan::start(watched)?;
        let mut latency = histogram();
        for k in 0..calls {
            let member = std::slice::from_ref(&self.ids[k % self.ids.len()]);
            let asked = Instant::now();
            self.router.join(&format!("{}-j{}", self.channel, k % 50), member).await?;
            record(&mut latency, asked.elapsed());
        }
        for (name, spent) in span.spent()? {
            let us = spent.cpu.as_secs_f64() * 1e6 / calls as f64;
            report.set(&format!("join_{name}_cpu_us"), (us * 100.0).round() / 100.0);
        }
        percentiles(report, "join_latency_", &latency);
        Ok(())
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
        if let Some(app) = &self.pusher {
            return self.router.pusher_trigger(app, &self.channel, "m", data).await;
        }
        match self.one_call.get(self.published.len() % self.one_call.len().max(1)) {
            Some(addr) => RouterApi::publish_one_call(*addr, &self.channel, data).await,
            None => self.router.publish(&self.channel, data).await.map(drop),
        }
    }

    /// Sends the end marker, collects every member, and reports.
    pub async fn finish(mut self, report: &mut Report, prefix: &str) -> anyhow::Result<()> {
        self.publish(std::str::from_utf8(END)?).await?;
        let published = std::mem::take(&mut self.published);
        self.collect(report, prefix, &published).await
    }

    /// Collects every member and reports: deliveries, their latency from
    /// `published` (when each message was published, if this process did),
    /// and the CPU time of the processes watched.
    async fn collect(self, report: &mut Report, prefix: &str, published: &[Duration]) -> anyhow::Result<()> {
        self.collect_then(report, prefix, published, async {}).await
    }

    /// [`Fanout::collect`], closing the members only once `before_close` is done.
    async fn collect_then(
        self,
        report: &mut Report,
        prefix: &str,
        published: &[Duration],
        before_close: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let expected = published.len();
        let (mut per_message, mut per_delivery) = (histogram(), histogram());
        let mut last_of = vec![Duration::ZERO; expected];
        let (mut deliveries, mut out_of_order) = (0usize, 0usize);
        let members = self.members.len();
        let mut tallies = Vec::with_capacity(members);
        for member in self.members {
            tallies.push(member.await?);
        }
        let cpu = self.cpu.as_ref().map(CpuSpan::spent).transpose()?;
        if let Some(redis) = self.redis_calls {
            // Read before the members close, which the routers write to Redis.
            redis.report(report, prefix, expected).await?;
        }
        eprintln!("fanout: all members done");
        before_close.await;
        let mut closing = Vec::with_capacity(members);
        for (i, tally) in tallies.into_iter().enumerate() {
            closing.push(tokio::spawn(tally.conn.close()));
            if let Some(error) = tally.error {
                report.error(error);
            } else if expected > 0 && tally.received.len() != expected {
                report.error(format!("member {i}: got {} of {expected} messages", tally.received.len()));
            }
            deliveries += tally.received.len();
            out_of_order += tally.out_of_order;
            for (k, at) in tally.received.iter().filter(|(k, _)| *k < expected) {
                record(&mut per_delivery, at.saturating_sub(published[*k]));
                last_of[*k] = last_of[*k].max(*at);
            }
        }
        for close in closing {
            close.await?;
        }
        for (k, last) in last_of.iter().enumerate() {
            record(&mut per_message, last.saturating_sub(published[k]));
        }
        let span = last_of
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .saturating_sub(published.first().copied().unwrap_or_default());
        report.set(&format!("{prefix}members"), members);
        report.set(&format!("{prefix}messages"), expected);
        report.set(&format!("{prefix}deliveries"), deliveries);
        report.set(&format!("{prefix}out_of_order"), out_of_order);
        if out_of_order > 0 {
            report
                .error(format!("{out_of_order} deliveries came before one published earlier through the same router"));
        }
        if expected > 0 {
            report
                .set(&format!("{prefix}deliveries_per_s"), (deliveries as f64 / span.as_secs_f64().max(1e-9)).round());
        }
        let round = |us: f64| (us * 100.0).round() / 100.0;
        for (name, spent) in cpu.unwrap_or_default() {
            let us = spent.cpu.as_secs_f64() * 1e6;
            report.set(&format!("{prefix}{name}_cpu_us_per_delivery"), round(us / deliveries.max(1) as f64));
            report.set(&format!("{prefix}{name}_cpu_us_per_publish"), round(us / (expected + 1) as f64));
            let writes = spent.writes as f64 / deliveries.max(1) as f64;
            report.set(&format!("{prefix}{name}_writes_per_delivery"), (writes * 1000.0).round() / 1000.0);
        }
        if expected > 0 {
            percentiles(report, &format!("{prefix}publish_to_last_delivery_"), &per_message);
            percentiles(report, &format!("{prefix}delivery_latency_"), &per_delivery);
        }
        Ok(())
    }
}

/// Reads messages until the end marker and, when it knows how many to
/// expect, until it has them all (through several routers the end marker
/// may overtake another router's last). Message k came through router
/// k mod `routers`; one that comes after a later one from the same router
/// is out of order, a repeat or an unknown one is an error.
async fn listen(i: usize, conn: Conn, base: Instant, expect: Expect) -> MemberTally {
    let mut tally = MemberTally { received: Vec::new(), out_of_order: 0, error: None, conn };
    let mut last: Vec<Option<usize>> = vec![None; expect.routers.max(1)];
    let mut seen = std::collections::HashSet::new();
    let mut ended = false;
    while !(ended && expect.messages.is_none_or(|n| tally.received.len() >= n)) {
        let data = match tally.conn.recv_within(MEMBER_TIMEOUT).await {
            Ok(data) => data,
            Err(e) => {
                tally.error = Some(format!("member {i}: {e:#} after {} messages", tally.received.len()));
                break;
            }
        };
        let data = match expect.pusher {
            true => match pusher_data(&data) {
                Some(data) => data,
                None => continue,
            },
            false => data,
        };
        if data == END {
            ended = true;
            continue;
        }
        let k: Option<usize> = std::str::from_utf8(&data).ok().and_then(|s| s.split(':').next()?.parse().ok());
        let Some(k) = k.filter(|k| seen.insert(*k)) else {
            tally.error = Some(format!("member {i}: a repeated or unknown message {k:?}"));
            break;
        };
        let routers = last.len();
        let router = &mut last[k % routers];
        if router.is_some_and(|before| before > k) {
            tally.out_of_order += 1;
        }
        *router = Some(router.map_or(k, |before| before.max(k)));
        tally.received.push((k, base.elapsed()));
    }
    tally
}

/// A Pusher client's start: `connection_established`, then its subscribe
/// to `channel` and the answer (anything else the backend sends skipped).
async fn pusher_subscribe(mut conn: Conn, channel: String) -> anyhow::Result<Conn> {
    let wait = Duration::from_secs(10);
    let until = |event: &'static str| move |data: &[u8]| Envelope::parse(data).is_ok_and(|e| e.event == event);
    while !until("pusher:connection_established")(&conn.recv_within(wait).await?) {}
    let subscribe = serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel}});
    conn.send(subscribe.to_string().into(), false).await?;
    while !until("pusher_internal:subscription_succeeded")(&conn.recv_within(wait).await?) {}
    Ok(conn)
}

/// What a Pusher client got: the data of event `m`, as published. Read
/// without a JSON tree: the load tool shares the cores it measures.
fn pusher_data(message: &[u8]) -> Option<bytes::Bytes> {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        event: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        data: Option<std::borrow::Cow<'a, str>>,
    }
    let event: Event = serde_json::from_slice(message).ok().filter(|e: &Event| e.event == "m")?;
    Some(bytes::Bytes::from(event.data?.into_owned()))
}

/// Calls performed so far by every node at `addrs`, over all commands,
/// less the INFO each answered to say so.
pub(crate) async fn redis_calls(addrs: &[SocketAddr]) -> anyhow::Result<u64> {
    let mut calls = 0;
    for addr in addrs {
        calls += node_calls(*addr).await?.saturating_sub(1);
    }
    Ok(calls)
}

/// Calls performed so far, over all commands, from `INFO commandstats`.
async fn node_calls(addr: SocketAddr) -> anyhow::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n").await?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = conn.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "redis closed before the reply ended");
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        let Some((head, body)) = text.split_once("\r\n") else { continue };
        let len: usize = head.trim_start_matches('$').parse()?;
        if body.len() >= len {
            let calls =
                body.lines().filter_map(|line| line.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok());
            return Ok(calls.sum());
        }
    }
}

pub async fn run(endpoints: &[Endpoint], args: Args) -> anyhow::Result<Report> {
    let mut report = Report::new("fanout");
    let pusher = args.pusher.is_some();
    anyhow::ensure!(!(pusher && args.join_calls > 0), "--join-calls joins through /v1/join: not with --pusher");
    let expect = Expect { messages: Some(args.messages), routers: args.one_call.len().max(1), pusher };
    let mut fanout = match args.pusher.clone() {
        Some(app) => Fanout::subscribe_pusher(endpoints, &args, app, expect, &mut report).await?,
        None => {
            let channel = args.channel.clone();
            Fanout::join_channel(endpoints, args.router, channel, args.members, args.size, expect, &mut report).await?
        }
    };
    fanout.json_payload = args.json_payload;
    fanout.one_call = args.one_call.clone();
    report.set("gateways", endpoints.len());
    if args.listen_only {
        // Publishing is another process's: it waits for this line.
        println!("fanout: {} members joined; listening", args.members);
        let stdin_closed = async {
            let drain = || std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = tokio::task::spawn_blocking(drain).await;
        };
        fanout.collect_then(&mut report, "", &[], stdin_closed).await?;
        return Ok(report);
    }
    let watched = args.watch.processes();
    if args.join_calls > 0 {
        fanout.measure_joins(&watched, args.join_calls, &mut report).await?;
    }
    let redis = &args.watch.redis;
    let settling = (Instant::now(), if redis.is_empty() { None } else { Some(redis_calls(redis).await?) });
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    // What each gateway holds with every member connected and joined.
    for (name, pid) in named("gateway", &args.watch.gateway_pids) {
        report.set(&format!("{name}_rss_kib"), loadgen::proc::rss_bytes(pid)? / 1024);
    }
    eprintln!("fanout: {} members joined; publishing {} messages", args.members, args.messages);
    if let (since, Some(idle_before)) = settling {
        let before = redis_calls(redis).await?;
        let idle_per_s = before.saturating_sub(idle_before) as f64 / since.elapsed().as_secs_f64();
        fanout.redis_calls = Some(RedisCalls { addrs: redis.clone(), before, at: Instant::now(), idle_per_s });
    }
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
