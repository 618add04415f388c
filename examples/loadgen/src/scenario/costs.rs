//! What each operation costs each tier: the CPU time of the gateways, the
//! routers and Redis, and the Redis commands it runs, per connect, join,
//! publish (and per delivery), leave, presence join, history join and
//! close. Each operation is made one call at a time, as a PHP backend
//! makes them (on one kept connection to the router's HTTP API), over the
//! same sessions, and each span is measured on its own; the processes'
//! idle upkeep over as long is taken off.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::fanout::redis_calls;
use super::{open_many, Watch};
use crate::report::Report;
use crate::router_api::RouterApi;
use crate::transport::Endpoint;
use loadgen::proc::CpuSpan;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Router HTTP API address, HOST:PORT.
    #[arg(long)]
    pub router: SocketAddr,
    /// Sessions, each connected, joined, left and closed once per operation.
    #[arg(short, long, default_value_t = 2_000)]
    pub connections: usize,
    /// Publishes to the channel all sessions are in.
    #[arg(long, default_value_t = 100)]
    pub publishes: usize,
    /// Members of each presence channel (the joins spread over as many
    /// channels as it takes): a presence join is announced to each.
    #[arg(long, default_value_t = 20)]
    pub presence_members: usize,
    /// A channel prefix the router keeps history for (`--history`); each
    /// history join gets its kept messages, `--kept` of them.
    #[arg(long, default_value_t = String::from("costs-h-"))]
    pub history_prefix: String,
    #[arg(long, default_value_t = 10)]
    pub kept: usize,
    /// Callers making the joins, leaves, presence and history joins at
    /// once, each on its own kept connection (1: one call at a time).
    #[arg(long, default_value_t = 1)]
    pub callers: usize,
    /// The processes whose CPU time each operation costs, and the Redis
    /// nodes whose commands are counted.
    #[command(flatten)]
    pub watch: Watch,
}

/// What the watched processes spend and Redis runs, idle: the routers'
/// and gateways' upkeep, taken off each operation's span.
struct Upkeep {
    cpu_per_s: Vec<(String, f64)>,
    redis_per_s: f64,
}

struct Costs {
    watched: Vec<(String, u32)>,
    redis: Vec<SocketAddr>,
    upkeep: Upkeep,
}

impl Costs {
    async fn redis_calls(&self) -> anyhow::Result<u64> {
        redis_calls(&self.redis).await
    }

    /// Runs `op`, which makes `count` operations, and reports what each
    /// cost every tier as `NAME_TIER_cpu_us` and `NAME_redis_commands`.
    async fn measure<F: std::future::Future<Output = anyhow::Result<()>>>(
        &self,
        report: &mut Report,
        name: &str,
        count: usize,
        op: F,
    ) -> anyhow::Result<()> {
        let (span, calls, started) = (CpuSpan::start(&self.watched)?, self.redis_calls().await?, Instant::now());
        op.await?;
        let took = started.elapsed().as_secs_f64();
        let spent = span.spent()?;
        let calls = self.redis_calls().await?.saturating_sub(calls) as f64 - self.upkeep.redis_per_s * took;
        for ((tier, spent), (_, idle_per_s)) in spent.iter().zip(&self.upkeep.cpu_per_s) {
            let us = (spent.cpu.as_secs_f64() - idle_per_s * took).max(0.0) * 1e6 / count as f64;
            report.set(&format!("{name}_{tier}_cpu_us"), (us * 100.0).round() / 100.0);
        }
        if !self.redis.is_empty() {
            report.set(&format!("{name}_redis_commands"), (calls.max(0.0) / count as f64 * 100.0).round() / 100.0);
        }
        report.set(&format!("{name}_per_s"), (count as f64 / took).round());
        Ok(())
    }
}

/// One call per session, `callers` at a time, each caller on its own kept
/// connection to the router. The calls are made up before it starts.
fn call_each(
    router: SocketAddr,
    ids: &[String],
    callers: usize,
    request: &dyn Fn(usize, &str) -> (&'static str, serde_json::Value),
) -> impl std::future::Future<Output = anyhow::Result<()>> + 'static {
    let requests: Vec<_> = ids.iter().enumerate().map(|(i, id)| request(i, id)).collect();
    let share = requests.len().div_ceil(callers.max(1)).max(1);
    async move {
        let tasks: Vec<_> = requests
            .chunks(share)
            .map(|part| {
                let part = part.to_vec();
                tokio::spawn(async move {
                    let mut api = RouterApi::new(router);
                    for (path, body) in part {
                        api.post(path, &body).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        Ok(())
    }
}

pub async fn run(endpoints: &[Endpoint], args: Args) -> anyhow::Result<Report> {
    let mut report = Report::new("costs");
    let watched = args.watch.processes();
    let n = args.connections;
    report.set("connections", n);
    report.set("callers", args.callers);

    // The idle rates first, over two seconds.
    let mut costs = Costs {
        watched: watched.clone(),
        redis: args.watch.redis.clone(),
        upkeep: Upkeep { cpu_per_s: Vec::new(), redis_per_s: 0.0 },
    };
    let (span, calls) = (CpuSpan::start(&watched)?, costs.redis_calls().await?);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_calls = costs.redis_calls().await?.saturating_sub(calls);
    costs.upkeep = Upkeep {
        cpu_per_s: span.spent()?.into_iter().map(|(tier, spent)| (tier, spent.cpu.as_secs_f64() / 2.0)).collect(),
        redis_per_s: idle_calls as f64 / 2.0,
    };

    let mut conns = Vec::new();
    let mut ids = Vec::new();
    costs
        .measure(&mut report, "connect", n, async {
            let (opened, failures) = open_many(endpoints, n, 100, true).await;
            anyhow::ensure!(failures.is_empty(), "connects failed: {:?}", &failures[..failures.len().min(3)]);
            for mut conn in opened {
                let id = conn.recv_within(Duration::from_secs(10)).await?;
                ids.push(String::from_utf8(id.to_vec())?);
                conns.push(conn);
            }
            Ok(())
        })
        .await?;
    anyhow::ensure!(ids.iter().all(|id| id.len() == 16), "run the echo backend with --greet");

    // Every member reads what comes, and counts it.
    let received = Arc::new(AtomicUsize::new(0));
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let readers: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (received, mut stop) = (received.clone(), stop.subscribe());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.recv() => return Some(conn),
                        got = conn.recv() => match got {
                            Ok(Some(_)) => received.fetch_add(1, Relaxed),
                            _ => return None,
                        },
                    };
                }
            })
        })
        .collect();

    let mut router = RouterApi::new(args.router);
    let each = |request: &dyn Fn(usize, &str) -> (&'static str, serde_json::Value)| {
        call_each(args.router, &ids, args.callers, request)
    };
    costs
        .measure(
            &mut report,
            "join",
            n,
            each(&|_, id| ("/v1/join", json!({"channel": "costs-room", "sessions": [id]}))),
        )
        .await?;
    let before = received.load(Relaxed);
    costs
        .measure(&mut report, "publish", args.publishes, async {
            for k in 0..args.publishes {
                router.post("/v1/publish", &json!({"channel": "costs-room", "data": format!("m{k}")})).await?;
            }
            let all = before + args.publishes * n;
            let deadline = Instant::now() + Duration::from_secs(60);
            while received.load(Relaxed) < all {
                anyhow::ensure!(Instant::now() < deadline, "{} of {all} deliveries", received.load(Relaxed));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        })
        .await?;
    for tier in watched.iter().map(|(tier, _)| tier) {
        let per_publish = report.get(&format!("publish_{tier}_cpu_us")).unwrap_or(0.0);
        report.set(&format!("delivery_{tier}_cpu_us"), (per_publish / n as f64 * 1000.0).round() / 1000.0);
    }
    costs
        .measure(
            &mut report,
            "leave",
            n,
            each(&|_, id| ("/v1/leave", json!({"channel": "costs-room", "sessions": [id]}))),
        )
        .await?;
    let presence = |i: usize, id: &str| {
        let channel = format!("presence-costs-{}", i / args.presence_members.max(1));
        ("/v1/join", json!({"channel": channel, "sessions": [id], "user": format!("u{i}")}))
    };
    costs.measure(&mut report, "presence_join", n, each(&presence)).await?;
    let kept = format!("{}room", args.history_prefix);
    for k in 0..args.kept {
        router.post("/v1/publish", &json!({"channel": kept, "data": format!("kept {k}")})).await?;
    }
    let history = |_, id: &str| ("/v1/join", json!({"channel": kept, "sessions": [id], "history": true}));
    costs.measure(&mut report, "history_join", n, each(&history)).await?;
    let _ = stop.send(());
    let mut conns = Vec::new();
    for reader in readers {
        conns.extend(reader.await?);
    }
    anyhow::ensure!(conns.len() == n, "{} of {n} connections still open", conns.len());
    costs
        .measure(&mut report, "close", n, async {
            drop(conns);
            // Every session is in the kept channel: done when it is empty
            // (one Redis command a look, where /v1/info counts every shard).
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let count = router.post("/v1/count", &json!({"channel": kept})).await?["count"].clone();
                if count == 0 {
                    return Ok(());
                }
                anyhow::ensure!(Instant::now() < deadline, "{count} sessions still in {kept}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await?;
    Ok(report)
}
