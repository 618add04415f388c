//! History at join under load: a publisher sends numbered messages to a
//! channel that keeps its last N (the router's `--history`), and members
//! join it one by one meanwhile, asking for its history. Each must get the
//! kept messages, then the live ones, as one run of numbers up to the end:
//! none lost or repeated at the seam, and as many kept ones as were there.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::time::Instant;

use super::{padded, session_message, END, WAIT};
use crate::report::Report;
use crate::router_api::RouterApi;
use crate::transport::{Conn, Endpoint};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Router HTTP API address, HOST:PORT: the publishes go through it.
    #[arg(long)]
    pub router: SocketAddr,
    /// The router the joins go through (another one on the same store,
    /// to check history at join across routers); `--router` by default.
    #[arg(long)]
    pub join_router: Option<SocketAddr>,
    /// The channel: one the router's --history names.
    #[arg(long, default_value = "history-load")]
    pub channel: String,
    /// How many messages the channel keeps (its --history count).
    #[arg(long, default_value_t = 50)]
    pub kept: u64,
    /// Seconds to publish for.
    #[arg(short, long, default_value_t = 5.0)]
    pub duration: f64,
    /// Publish at least this many, however long it takes past the duration.
    #[arg(long, default_value_t = 0)]
    pub min_messages: u64,
    /// Members that join while messages flow, at even intervals.
    #[arg(short, long, default_value_t = 40)]
    pub joiners: usize,
    /// Message size in bytes.
    #[arg(short, long, default_value_t = 64)]
    pub size: usize,
}

/// What one joiner saw: where its run began, and how long it was.
struct Seen {
    first: u64,
    received: u64,
    /// Messages published (answered) before it asked to join, and once it had joined.
    before: u64,
    after: u64,
}

/// Opens a session (its id comes in the session message), joins it with
/// history, and reads one run of numbers until the end marker.
async fn join_and_read(
    endpoint: Endpoint,
    args: Args,
    published: Arc<AtomicU64>,
    joined: Arc<AtomicUsize>,
) -> anyhow::Result<Seen> {
    let mut conn = Conn::open(&endpoint.with_query("resume=1"), None).await?;
    let hello = session_message(&mut conn).await?;
    let id = hello["id"].as_str().context("session message without an id")?.to_owned();
    let mut router = RouterApi::new(args.join_router.unwrap_or(args.router));
    let before = published.load(SeqCst);
    let result = router.join_with_history(&args.channel, &id).await;
    let after = published.load(SeqCst);
    joined.fetch_add(1, SeqCst);
    result?;
    let (mut first, mut next) = (None, 0);
    loop {
        let data = conn.recv_within(WAIT).await.with_context(|| format!("after message {next}"))?;
        if data == END.as_bytes() {
            break;
        }
        let k: u64 = std::str::from_utf8(&data)
            .ok()
            .and_then(|s| s.split(':').next()?.parse().ok())
            .with_context(|| format!("not a numbered message: {:?}", String::from_utf8_lossy(&data)))?;
        match first {
            None => first = Some(k),
            Some(_) if k != next => bail!("expected message {next}, got {k}: lost or repeated at the seam"),
            Some(_) => {}
        }
        next = k + 1;
    }
    conn.close().await;
    let first = first.context("got nothing before the end")?;
    Ok(Seen { first, received: next - first, before, after })
}

pub async fn run(endpoints: &[Endpoint], args: Args) -> anyhow::Result<Report> {
    let mut report = Report::new("late-join");
    let published = Arc::new(AtomicU64::new(0));
    let joined = Arc::new(AtomicUsize::new(0));
    let mut publisher = RouterApi::new(args.router);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let gap = Duration::from_secs_f64(args.duration / (args.joiners as f64 + 1.0));
    let mut joiners = Vec::with_capacity(args.joiners);
    let mut next_join = started + gap;
    while Instant::now() < deadline || published.load(SeqCst) < args.min_messages {
        let n = published.load(SeqCst);
        publisher.publish(&args.channel, std::str::from_utf8(&padded(format!("{n}:"), args.size))?).await?;
        published.store(n + 1, SeqCst);
        // A joiner comes once there are `kept` messages to keep.
        if Instant::now() >= next_join && joiners.len() < args.joiners && n + 1 >= args.kept {
            let endpoint = endpoints[joiners.len() % endpoints.len()].clone();
            let task = join_and_read(endpoint, args.clone(), published.clone(), joined.clone());
            joiners.push(tokio::spawn(task));
            next_join += gap;
        }
    }
    // Live messages go on until every joiner has joined, then the end.
    let give_up = Instant::now() + WAIT;
    while joined.load(SeqCst) < joiners.len() && Instant::now() < give_up {
        let n = published.load(SeqCst);
        publisher.publish(&args.channel, std::str::from_utf8(&padded(format!("{n}:"), args.size))?).await?;
        published.store(n + 1, SeqCst);
    }
    publisher.publish(&args.channel, END).await?;
    let total = published.load(SeqCst);
    let mut received = 0;
    for joiner in joiners {
        match joiner.await? {
            Err(err) => report.error(format!("{err:#}")),
            Ok(seen) => {
                // The seam fell between `before` and `after` (plus a publish
                // in flight): the history began the kept count before it.
                let (earliest, latest) =
                    (seen.before.saturating_sub(args.kept), (seen.after + 1).saturating_sub(args.kept));
                if seen.first < earliest || seen.first > latest {
                    report.error(format!(
                        "history began at {}, not within {earliest}..={latest} (joined between {} and {})",
                        seen.first, seen.before, seen.after
                    ));
                }
                if seen.first + seen.received != total {
                    report.error(format!("a joiner's run ended at {}, not {total}", seen.first + seen.received));
                }
                received += seen.received;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    report.set("joiners", args.joiners);
    report.set("messages", total);
    report.set("publishes_per_s", (total as f64 / elapsed).round());
    report.set("received", received);
    Ok(report)
}
