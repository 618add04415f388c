//! Connection setup rate: open, complete the handshake, wait for the first
//! message (the backend's answer to the connect event), close.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::report::{histogram, percentiles, record, Progress, Report};
use crate::transport::{source_ip, Conn, Endpoint};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Connections to set up in all.
    #[arg(short, long, default_value_t = 10_000)]
    pub connections: usize,
    /// Setups in progress at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Do not wait for a first message (the backend sends none on connect).
    #[arg(long)]
    pub no_first_message: bool,
    /// Seconds to wait for the first message.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

pub async fn run(endpoints: &[Endpoint], args: Args) -> anyhow::Result<Report> {
    let mut report = Report::new("connect");
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("connect", Some(args.connections as u64), done.clone());
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let timeout = Duration::from_secs_f64(args.timeout);
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| {
            let (endpoint, permits, done) = (endpoints[i % endpoints.len()].clone(), permits.clone(), done.clone());
            let wait_first = !args.no_first_message;
            tokio::spawn(async move {
                let _permit = permits.acquire().await.expect("never closed");
                let t0 = Instant::now();
                let mut conn =
                    Conn::open(&endpoint, Some(source_ip(i))).await.map_err(|e| format!("connection {i}: {e:#}"))?;
                let handshake = t0.elapsed();
                let first = if wait_first {
                    conn.recv_within(timeout).await.map_err(|e| format!("connection {i}: {e:#}"))?;
                    Some(t0.elapsed())
                } else {
                    None
                };
                done.fetch_add(1, Ordering::Relaxed);
                // Closing is not part of setup: let it finish on its own.
                let closing = tokio::spawn(conn.close());
                Ok::<_, String>((handshake, first, closing))
            })
        })
        .collect();
    let (mut handshakes, mut firsts, mut closings) = (histogram(), histogram(), Vec::new());
    for task in tasks {
        match task.await.expect("connect task panicked") {
            Ok((handshake, first, closing)) => {
                record(&mut handshakes, handshake);
                if let Some(first) = first {
                    record(&mut firsts, first);
                }
                closings.push(closing);
            }
            Err(failure) => report.error(failure),
        }
    }
    let elapsed = start.elapsed();
    progress.finish();
    for closing in closings {
        let _ = closing.await;
    }
    let succeeded = handshakes.len();
    report.set("connections", succeeded);
    report.set("seconds", (elapsed.as_secs_f64() * 100.0).round() / 100.0);
    report.set("connections_per_s", (succeeded as f64 / elapsed.as_secs_f64()).round());
    percentiles(&mut report, "handshake_", &handshakes);
    percentiles(&mut report, "first_message_", &firsts);
    Ok(report)
}
