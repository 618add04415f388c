//! The load scenarios. Each opens its connections, drives them, checks
//! every reply, and returns a [`Report`](crate::report::Report).

pub mod churn;
pub mod connect;
pub mod costs;
pub mod echo;
pub mod fanout;
pub mod idle;
pub mod late_join;
pub mod soak;

use std::sync::Arc;

use tokio::sync::Semaphore;

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::transport::{source_ip, Conn, Endpoint};

/// The processes a scenario watches, by tier (each flag repeatable), and
/// the Redis nodes whose commands it counts (`INFO commandstats`).
#[derive(clap::Args, Debug, Clone)]
pub struct Watch {
    /// A gateway's process id: its CPU time (schedstat) over what the
    /// scenario measures.
    #[arg(long = "gateway-pid")]
    pub gateway_pids: Vec<u32>,
    /// A router's process id, as a gateway's.
    #[arg(long = "router-pid")]
    pub router_pids: Vec<u32>,
    /// Redis' process id, as a gateway's; a Cluster's masters, each.
    #[arg(long = "redis-pid")]
    pub redis_pids: Vec<u32>,
    /// Redis' address, HOST:PORT: the commands it ran over what the
    /// scenario measures; a Cluster's masters, each (summed).
    #[arg(long)]
    pub redis: Vec<std::net::SocketAddr>,
}

impl Watch {
    /// The watched processes, named by tier.
    pub fn processes(&self) -> Vec<(String, u32)> {
        let mut watched = loadgen::proc::named("gateway", &self.gateway_pids);
        watched.extend(loadgen::proc::named("router", &self.router_pids));
        watched.extend(loadgen::proc::named("redis", &self.redis_pids));
        watched
    }
}

/// The message that ends a stream of numbered ones.
pub const END: &str = "end";
/// How long a client waits for its next message.
pub const WAIT: Duration = Duration::from_secs(10);

/// Opens `n` connections spread over `endpoints` (and, when `spread`, over
/// loopback source addresses), `concurrency` at a time. Returns them in
/// order, with the failures.
pub async fn open_many(endpoints: &[Endpoint], n: usize, concurrency: usize, spread: bool) -> (Vec<Conn>, Vec<String>) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let endpoint = endpoints[i % endpoints.len()].clone();
            let permits = permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire().await.expect("never closed");
                Conn::open(&endpoint, spread.then(|| source_ip(i))).await.map_err(|e| format!("connection {i}: {e:#}"))
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(n);
    let mut failures = Vec::new();
    for task in tasks {
        match task.await.expect("open task panicked") {
            Ok(conn) => conns.push(conn),
            Err(failure) => failures.push(failure),
        }
    }
    (conns, failures)
}

/// A payload of `size` bytes (at least the prefix) that starts with `prefix`.
pub fn padded(prefix: String, size: usize) -> bytes::Bytes {
    let mut text = prefix.into_bytes();
    if text.len() < size {
        text.resize(size, b'x');
    }
    text.into()
}

/// The gateway's session message, which a resumable session gets first.
pub async fn session_message(conn: &mut Conn) -> anyhow::Result<Value> {
    let first = conn.recv_within(WAIT).await?;
    let hello: Value = serde_json::from_slice(&first).context("the first message is not the session message")?;
    if hello["type"] != "session" {
        bail!("the first message is not the session message: {hello}");
    }
    Ok(hello)
}
