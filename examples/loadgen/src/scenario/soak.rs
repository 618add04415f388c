//! A mixed workload for a given time: echo traffic on connections that
//! ramp up and keep reconnecting, while a publisher fans out to a channel.
//! It must end with zero lost, repeated or reordered messages.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::echo::{add_echo_figures, drive, Worker};
use super::fanout::Fanout;
use super::open_many;
use crate::report::Report;
use crate::transport::Endpoint;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Router HTTP API address, HOST:PORT.
    #[arg(long)]
    pub router: SocketAddr,
    /// Seconds to run.
    #[arg(short, long, default_value_t = 20.0)]
    pub duration: f64,
    /// Echo connections.
    #[arg(long, default_value_t = 50)]
    pub echo_connections: usize,
    /// Each echo connection reconnects after this many round trips (0: never).
    #[arg(long, default_value_t = 200)]
    pub reconnect_every: u64,
    /// Channel members for the fan-out.
    #[arg(long, default_value_t = 200)]
    pub members: usize,
    /// Milliseconds between publishes.
    #[arg(long, default_value_t = 50)]
    pub publish_interval_ms: u64,
    /// Message size in bytes.
    #[arg(short, long, default_value_t = 64)]
    pub size: usize,
}

pub async fn run(endpoints: &[Endpoint], args: Args) -> anyhow::Result<Report> {
    let mut report = Report::new("soak");
    let duration = Duration::from_secs_f64(args.duration);
    let mut fanout = Fanout::join(endpoints, args.router, args.members, args.size, &mut report).await?;
    let (conns, failures) = open_many(endpoints, args.echo_connections, 64, false).await;
    failures.into_iter().for_each(|f| report.error(f));
    report.set("echo_connections", conns.len());
    let worker = Worker {
        size: args.size,
        binary: false,
        pipeline: 1,
        timeout: Duration::from_secs(5),
        reconnect_every: args.reconnect_every,
        // The fan-out needs a greeting backend, so echo connections get greeted too.
        greeted: true,
    };
    let echo = tokio::spawn({
        let endpoints = endpoints.to_vec();
        async move { drive(&endpoints, conns, worker, duration, "soak").await }
    });
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        fanout.publish_next().await?;
        tokio::time::sleep(Duration::from_millis(args.publish_interval_ms)).await;
    }
    let (tally, elapsed) = echo.await?;
    add_echo_figures(&mut report, "echo_", &tally, elapsed);
    fanout.finish(&mut report, "fanout_").await?;
    Ok(report)
}
