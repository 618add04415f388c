//! Session resume under load: members of one channel keep dropping their
//! connections (a reset, no close frame) and resuming, each time on the
//! next gateway, while a publisher sends to the channel. Every member must
//! get every message once and in order, across all its resumes.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::time::Instant;

use super::{padded, session_message, END, WAIT};
use crate::report::{histogram, percentiles, record, Report};
use crate::router_api::RouterApi;
use crate::transport::{Conn, Endpoint};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Router HTTP API address, HOST:PORT.
    #[arg(long)]
    pub router: SocketAddr,
    /// Seconds to publish for.
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Channel members, each resumable.
    #[arg(short, long, default_value_t = 100)]
    pub clients: usize,
    /// Drops (each followed by a resume) per second, over all members.
    #[arg(long, default_value_t = 20.0)]
    pub drops_per_second: f64,
    /// Milliseconds a dropped member stays away before it resumes.
    #[arg(long, default_value_t = 100)]
    pub offline_ms: u64,
    /// Milliseconds between publishes.
    #[arg(long, default_value_t = 10)]
    pub publish_interval_ms: u64,
    /// Message size in bytes.
    #[arg(short, long, default_value_t = 64)]
    pub size: usize,
}

/// One resumable member: where it is connected, and what it got.
struct Member {
    index: usize,
    id: String,
    token: String,
    gateway: usize,
    /// None only while dropped.
    conn: Option<Conn>,
    /// Messages received over the session's life: a resume's `last`.
    received: u64,
}

#[derive(Default)]
struct Tally {
    received: u64,
    resumes: u64,
    resume_latencies: Vec<Duration>,
    error: Option<String>,
}

impl Member {
    async fn open(index: usize, endpoints: &[Endpoint]) -> anyhow::Result<Member> {
        let gateway = index % endpoints.len();
        let mut conn = Conn::open(&endpoints[gateway].with_query("resume=1"), None).await?;
        let hello = session_message(&mut conn).await?;
        let id = hello["id"].as_str().context("session message without an id")?.to_owned();
        let token = hello["resume"].as_str().context("session message without a token")?.to_owned();
        Ok(Member { index, id, token, gateway, conn: Some(conn), received: 0 })
    }

    /// Drops the connection, stays away, and resumes on the next gateway.
    async fn drop_and_resume(&mut self, endpoints: &[Endpoint], offline: Duration) -> anyhow::Result<Duration> {
        if let Some(conn) = self.conn.take() {
            conn.kill();
        }
        tokio::time::sleep(offline).await;
        self.gateway = (self.gateway + 1) % endpoints.len();
        let started = Instant::now();
        let query = format!("resume={}&last={}", self.token, self.received);
        let conn = self.conn.insert(Conn::open(&endpoints[self.gateway].with_query(&query), None).await?);
        let hello = session_message(conn).await.context("resume refused")?;
        if hello["id"].as_str() != Some(self.id.as_str()) || hello["resumed"] != Value::Bool(true) {
            bail!("resumed as another session: {hello}");
        }
        self.token = hello["resume"].as_str().context("no new token")?.to_owned();
        Ok(started.elapsed())
    }
}

/// A member's life: read messages 0, 1, 2… until the end marker, dropping
/// and resuming at its own random times.
async fn live(mut member: Member, endpoints: Vec<Endpoint>, mean_gap: Duration, offline: Duration) -> Tally {
    let mut tally = Tally::default();
    let mut next_drop = Instant::now() + jitter(mean_gap, member.index, 0);
    let outcome: anyhow::Result<()> = async {
        loop {
            tokio::select! {
                data = member.conn.as_mut().expect("connected").recv_within(WAIT) => {
                    let data = data.with_context(|| format!("after {} messages", member.received))?;
                    if data == END.as_bytes() {
                        return Ok(());
                    }
                    let k: Option<u64> = std::str::from_utf8(&data).ok().and_then(|s| s.split(':').next()?.parse().ok());
                    if k != Some(member.received) {
                        bail!("expected message {}, got {k:?} (after {} resumes)", member.received, tally.resumes);
                    }
                    member.received += 1;
                }
                _ = tokio::time::sleep_until(next_drop) => {
                    let latency = member.drop_and_resume(&endpoints, offline).await?;
                    tally.resumes += 1;
                    tally.resume_latencies.push(latency);
                    next_drop = Instant::now() + jitter(mean_gap, member.index, tally.resumes);
                }
            }
        }
    }
    .await;
    if let Err(err) = outcome {
        tally.error = Some(format!("member {} ({}): {err:#}", member.index, member.id));
    }
    tally.received = member.received;
    if let Some(conn) = member.conn {
        conn.close().await;
    }
    tally
}

/// Between half and one and a half times `mean`, different per member and turn.
fn jitter(mean: Duration, member: usize, turn: u64) -> Duration {
    let hash = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), (member, turn));
    mean.mul_f64(0.5 + (hash % 1000) as f64 / 1000.0)
}

pub async fn run(endpoints: &[Endpoint], args: Args) -> anyhow::Result<Report> {
    let mut report = Report::new("churn");
    let mut members = Vec::with_capacity(args.clients);
    for index in 0..args.clients {
        members.push(Member::open(index, endpoints).await?);
    }
    let channel = format!("churn-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
    let mut router = RouterApi::new(args.router);
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    router.join(&channel, &ids).await?;
    let mean_gap = Duration::from_secs_f64(args.clients as f64 / args.drops_per_second.max(1e-3));
    let offline = Duration::from_millis(args.offline_ms);
    let tasks: Vec<_> =
        members.into_iter().map(|m| tokio::spawn(live(m, endpoints.to_vec(), mean_gap, offline))).collect();
    eprintln!("churn: {} members joined; publishing for {}s", args.clients, args.duration);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let mut published = 0u64;
    while Instant::now() < deadline {
        router.publish(&channel, std::str::from_utf8(&padded(format!("{published}:"), args.size))?).await?;
        published += 1;
        tokio::time::sleep(Duration::from_millis(args.publish_interval_ms)).await;
    }
    router.publish(&channel, END).await?;
    let (mut resumes, mut deliveries, mut latencies) = (0, 0, histogram());
    for task in tasks {
        let tally = task.await?;
        if let Some(error) = tally.error {
            report.error(error);
        } else if tally.received != published {
            report.error(format!("a member got {} of {published} messages", tally.received));
        }
        resumes += tally.resumes;
        deliveries += tally.received;
        tally.resume_latencies.iter().for_each(|l| record(&mut latencies, *l));
    }
    let elapsed = started.elapsed().as_secs_f64();
    report.set("gateways", endpoints.len());
    report.set("members", args.clients);
    report.set("messages", published);
    report.set("deliveries", deliveries);
    report.set("lost", (published * args.clients as u64).saturating_sub(deliveries));
    report.set("resumes", resumes);
    report.set("resumes_per_s", (resumes as f64 / elapsed).round());
    percentiles(&mut report, "resume_", &latencies);
    Ok(report)
}
