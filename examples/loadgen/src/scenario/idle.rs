//! N idle connections, spread over loopback source addresses, and what
//! they cost the gateway in resident memory.

use std::time::Duration;

use futures_util::StreamExt;

use super::{open_many, padded};
use crate::admin::{self, sample};
use crate::report::Report;
use crate::transport::Endpoint;
use loadgen::proc::rss_bytes;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Idle connections to open.
    #[arg(short, long, default_value_t = 10_000)]
    pub connections: usize,
    /// The gateway's process id, to read its RSS before and after.
    #[arg(long)]
    pub pid: Option<u32>,
    /// The gateway's admin listener (`--admin`), to break the figure down:
    /// its session future and the connection params it holds.
    #[arg(long)]
    pub admin: Option<std::net::SocketAddr>,
    /// Connections opened at once.
    #[arg(long, default_value_t = 500)]
    pub concurrency: usize,
    /// Seconds to keep the connections open after measuring.
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
    /// Then each connection sends one message of this many bytes and
    /// waits for it to come back (an echo backend), and the gateway's RSS
    /// is measured again: what a connection keeps after a burst.
    #[arg(long)]
    pub echo_bytes: Option<usize>,
}

pub async fn run(endpoints: &[Endpoint], args: Args) -> anyhow::Result<Report> {
    let mut report = Report::new("idle");
    let before = args.pid.map(rss_bytes).transpose()?;
    let started = std::time::Instant::now();
    let (mut conns, failures) = open_many(endpoints, args.connections, args.concurrency, true).await;
    report.set("connections", conns.len());
    report.set("failed", failures.len());
    report.set("open_seconds", (started.elapsed().as_secs_f64() * 100.0).round() / 100.0);
    failures.into_iter().for_each(|f| report.error(f));
    // Let the gateway finish its per-connection setup before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let (Some(pid), Some(before)) = (args.pid, before) {
        let after = rss_bytes(pid)?;
        report.set("rss_before_kib", before / 1024);
        report.set("rss_after_kib", after / 1024);
        if !conns.is_empty() {
            let per_connection = after.saturating_sub(before) / conns.len() as u64;
            report.set("bytes_per_connection", per_connection);
            if let Some(admin) = args.admin {
                breakdown(&mut report, admin, per_connection, conns.len()).await?;
            }
        }
    }
    if let (Some(size), Some(pid), Some(before)) = (args.echo_bytes, args.pid, before) {
        let echoed = echo_once(conns.iter_mut().collect(), size, args.concurrency).await;
        report.set("echoed", echoed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_bytes(pid)?;
        report.set("rss_after_echo_kib", after / 1024);
        report.set("bytes_per_connection_after_echo", after.saturating_sub(before) / conns.len().max(1) as u64);
    }
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    drop(conns);
    Ok(report)
}

/// Each connection sends one message of `size` bytes and reads until it
/// comes back (a greeting may come first); how many did.
async fn echo_once(conns: Vec<&mut crate::transport::Conn>, size: usize, concurrency: usize) -> usize {
    let echoes = futures_util::stream::iter(conns).map(|conn| async move {
        conn.send(padded("echo".into(), size), false).await.ok()?;
        loop {
            let got = conn.recv_within(Duration::from_secs(10)).await.ok()?;
            if got.len() == size {
                return Some(());
            }
        }
    });
    echoes.buffer_unordered(concurrency.max(1)).filter_map(std::future::ready).count().await
}

/// Where the bytes go: the session future (in its task, with tokio's
/// header), the connection params, and the rest (tokio's I/O slot, the
/// outbox, the registry entry, allocator rounding).
async fn breakdown(
    report: &mut Report,
    admin: std::net::SocketAddr,
    per_connection: u64,
    conns: usize,
) -> anyhow::Result<()> {
    let samples = admin::metrics(admin).await?;
    let future = sample(&samples, "gateway_session_future_bytes").unwrap_or(0.0) as u64;
    let params = sample(&samples, "gateway_params_bytes").unwrap_or(0.0) as u64 / conns as u64;
    report.set("session_future_bytes", future);
    report.set("params_bytes_per_connection", params);
    report.set("rest_bytes_per_connection", per_connection.saturating_sub(future + params));
    Ok(())
}
