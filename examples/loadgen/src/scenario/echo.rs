//! N connections, each sending numbered messages through the gateway to an
//! echo backend; every reply must be the message sent, in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::{open_many, padded};
use crate::report::{histogram, percentiles, record, Progress, Report};
use crate::transport::{Conn, Endpoint};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Concurrent connections.
    #[arg(short, long, default_value_t = 100)]
    pub connections: usize,
    /// Message size in bytes.
    #[arg(short, long, default_value_t = 64)]
    pub size: usize,
    /// Seconds to run.
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Send binary frames instead of text.
    #[arg(long)]
    pub binary: bool,
    /// Seconds to wait for a reply before counting the message lost.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// The backend sends a first message on connect (echo-app --greet): skip it.
    #[arg(long)]
    pub greeted: bool,
}

#[derive(Clone)]
pub struct Worker {
    pub size: usize,
    pub binary: bool,
    pub pipeline: usize,
    pub timeout: Duration,
    /// Reconnect after this many round trips (0: never).
    pub reconnect_every: u64,
    /// Skip the first message of every connection (the backend's greeting).
    pub greeted: bool,
}

pub struct Tally {
    pub latencies: Histogram<u64>,
    pub round_trips: u64,
    pub reconnects: u64,
    pub errors: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.add(&other.latencies).expect("same bounds");
        self.round_trips += other.round_trips;
        self.reconnects += other.reconnects;
        self.errors.extend(other.errors);
    }
}

impl Worker {
    /// Drives one connection until `deadline`, then waits out its replies.
    pub async fn run(
        self,
        id: usize,
        endpoint: Endpoint,
        mut conn: Conn,
        deadline: Instant,
        done: Arc<AtomicU64>,
    ) -> Tally {
        let mut tally = Tally { latencies: histogram(), round_trips: 0, reconnects: 0, errors: Vec::new() };
        let mut in_flight: VecDeque<(Bytes, Instant)> = VecDeque::new();
        let mut seq = 0u64;
        if let Err(e) = self.skip_greeting(&mut conn).await {
            tally.errors.push(format!("connection {id}: no greeting: {e:#}"));
            return tally;
        }
        loop {
            let reconnect_due = self.reconnect_every > 0
                && tally.round_trips > 0
                && tally.round_trips.is_multiple_of(self.reconnect_every);
            if reconnect_due && in_flight.is_empty() && Instant::now() < deadline {
                conn.close().await;
                let reopened = match Conn::open(&endpoint, None).await {
                    Ok(mut fresh) => self.skip_greeting(&mut fresh).await.map(|()| fresh),
                    Err(e) => Err(e),
                };
                match reopened {
                    Ok(fresh) => conn = fresh,
                    Err(e) => {
                        tally.errors.push(format!("connection {id}: reconnect failed: {e:#}"));
                        return tally;
                    }
                }
                tally.reconnects += 1;
            }
            while in_flight.len() < self.pipeline && Instant::now() < deadline {
                let message = padded(format!("{id}:{seq}:"), self.size);
                seq += 1;
                if let Err(e) = conn.send(message.clone(), self.binary).await {
                    tally.errors.push(format!("connection {id}: send failed: {e:#}"));
                    return tally;
                }
                in_flight.push_back((message, Instant::now()));
            }
            let Some((expected, sent_at)) = in_flight.pop_front() else { break };
            let reply = match conn.recv_within(self.timeout).await {
                Ok(reply) => reply,
                Err(e) => {
                    tally.errors.push(format!("connection {id}: {e:#}; {} message(s) lost", in_flight.len() + 1));
                    return tally;
                }
            };
            if reply != expected {
                tally.errors.push(format!(
                    "connection {id}: expected {:?}, got {:?}",
                    prefix(&expected),
                    prefix(&reply)
                ));
                return tally;
            }
            record(&mut tally.latencies, sent_at.elapsed());
            tally.round_trips += 1;
            done.fetch_add(1, Ordering::Relaxed);
        }
        conn.close().await;
        tally
    }
}

impl Worker {
    async fn skip_greeting(&self, conn: &mut Conn) -> anyhow::Result<()> {
        if self.greeted {
            conn.recv_within(self.timeout).await?;
        }
        Ok(())
    }
}

fn prefix(message: &[u8]) -> String {
    String::from_utf8_lossy(&message[..message.len().min(32)]).into_owned()
}

/// Runs `worker` on every connection until `duration` is over; merged tally.
pub async fn drive(
    endpoints: &[Endpoint],
    conns: Vec<Conn>,
    worker: Worker,
    duration: Duration,
    label: &str,
) -> (Tally, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(label, None, done.clone());
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            tokio::spawn(worker.clone().run(i, endpoints[i % endpoints.len()].clone(), conn, deadline, done.clone()))
        })
        .collect();
    let mut total = Tally { latencies: histogram(), round_trips: 0, reconnects: 0, errors: Vec::new() };
    for task in tasks {
        total.merge(task.await.expect("echo worker panicked"));
    }
    let elapsed = start.elapsed();
    progress.finish();
    (total, elapsed)
}

pub async fn run(endpoints: &[Endpoint], args: Args) -> anyhow::Result<Report> {
    let mut report = Report::new("echo");
    let (conns, failures) = open_many(endpoints, args.connections, 256, false).await;
    failures.into_iter().for_each(|f| report.error(f));
    let worker = Worker {
        size: args.size,
        binary: args.binary,
        pipeline: args.pipeline.max(1),
        timeout: Duration::from_secs_f64(args.timeout),
        reconnect_every: 0,
        greeted: args.greeted,
    };
    report.set("connections", conns.len());
    report.set("message_bytes", args.size);
    report.set("pipeline", worker.pipeline);
    let (tally, elapsed) = drive(endpoints, conns, worker, Duration::from_secs_f64(args.duration), "echo").await;
    add_echo_figures(&mut report, "", &tally, elapsed);
    Ok(report)
}

pub fn add_echo_figures(report: &mut Report, prefix: &str, tally: &Tally, elapsed: Duration) {
    report.set(&format!("{prefix}seconds"), (elapsed.as_secs_f64() * 100.0).round() / 100.0);
    report.set(&format!("{prefix}round_trips"), tally.round_trips);
    report.set(&format!("{prefix}round_trips_per_s"), (tally.round_trips as f64 / elapsed.as_secs_f64()).round());
    if tally.reconnects > 0 {
        report.set(&format!("{prefix}reconnects"), tally.reconnects);
    }
    percentiles(report, &format!("{prefix}latency_"), &tally.latencies);
    tally.errors.iter().for_each(|e| report.error(e.clone()));
}
