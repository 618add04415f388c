//! The Redis connection every Redis user opens (the router's store,
//! chat-app's users and queue): one Redis, the master a group of Sentinels
//! names (followed through a failover), or a Redis Cluster.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value};
use tokio::time::Instant;

/// How long connecting, a command, asking the Sentinels for the master or
/// the cluster for its slots may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How often a failing connection asks the Sentinels again, at most.
const SENTINEL_RECHECK: Duration = Duration::from_millis(250);
/// How long a command is tried again on a cluster while its slot moves.
const MIGRATION_WAIT: Duration = Duration::from_secs(5);
const MIGRATION_PAUSE: Duration = Duration::from_millis(20);

/// A Redis connection that reconnects by itself and never waits forever.
/// It connects lazily, so a process can start before Redis is up.
///
/// `redis://HOST:PORT` is one Redis. `redis+sentinel://HOST:PORT,HOST:PORT/NAME`
/// is the master the Sentinels at those addresses know as NAME: asked for
/// at the first command, and again whenever a command fails as a lost or
/// demoted master does (a connection error, a timeout, READONLY), so the
/// connection follows a failover by itself.
///
/// `redis+cluster://HOST:PORT,HOST:PORT` is a Redis Cluster, its slots
/// learnt from those nodes and followed through MOVED and ASK. The keys a
/// script, a MULTI or a pipeline touches together must share a slot (one
/// hash tag, as [`Redis::key_prefix`] gives).
#[derive(Clone)]
pub struct Redis {
    /// The connection; none before the Sentinels named a master, or before
    /// the cluster's first command.
    current: Arc<Mutex<Option<Link>>>,
    sentinels: Option<Arc<Sentinels>>,
    cluster: Option<Arc<ClusterClient>>,
}

#[derive(Clone)]
enum Link {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

struct Sentinels {
    client: tokio::sync::Mutex<SentinelClient>,
    /// Moves from one master to another.
    failovers: AtomicU64,
    master: Mutex<Master>,
}

/// The master connected to, and when the Sentinels were last asked.
#[derive(Default)]
struct Master {
    addr: Option<String>,
    asked: Option<Instant>,
}

/// `HOST:PORT,HOST:PORT` as a URL per node.
fn node_urls(hosts: &str) -> Vec<String> {
    hosts.split(',').filter(|host| !host.is_empty()).map(|host| format!("redis://{host}")).collect()
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1))
}

impl Redis {
    pub fn open(url: &str) -> RedisResult<Redis> {
        let invalid = |why: &'static str| RedisError::from((ErrorKind::InvalidClientConfig, why));
        if let Some(hosts) = url.strip_prefix("redis+cluster://") {
            let nodes = node_urls(hosts);
            if nodes.is_empty() {
                return Err(invalid("redis+cluster:// needs at least one node"));
            }
            let client = ClusterClient::builder(nodes).connection_timeout(TIMEOUT).response_timeout(TIMEOUT).build()?;
            return Ok(Redis { current: Arc::new(Mutex::new(None)), sentinels: None, cluster: Some(Arc::new(client)) });
        }
        let Some(rest) = url.strip_prefix("redis+sentinel://") else {
            let manager = redis::Client::open(url)?.get_connection_manager_lazy(manager_config())?;
            let current = Arc::new(Mutex::new(Some(Link::One(manager))));
            return Ok(Redis { current, sentinels: None, cluster: None });
        };
        let (hosts, name) = rest.split_once('/').ok_or(invalid("redis+sentinel://HOSTS/MASTER_NAME"))?;
        let nodes = node_urls(hosts);
        if nodes.is_empty() || name.is_empty() {
            return Err(invalid("redis+sentinel:// needs at least one sentinel and a master name"));
        }
        let client = SentinelClient::build(nodes, name.to_owned(), None, SentinelServerType::Master)?;
        let sentinels = Sentinels {
            client: tokio::sync::Mutex::new(client),
            failovers: AtomicU64::new(0),
            master: Mutex::default(),
        };
        Ok(Redis { current: Arc::new(Mutex::new(None)), sentinels: Some(Arc::new(sentinels)), cluster: None })
    }

    /// The prefix every key gets: `prefix` as given, or on a cluster as a
    /// hash tag (`{prefix}`), so that all keys share one slot and every
    /// script and MULTI runs unchanged. The cluster then keeps them on one
    /// master (with its replicas): it adds failover, not sharding (chat-app's
    /// choice; the router spreads its keys, see `router::store::shards`).
    pub fn key_prefix(&self, prefix: &str) -> String {
        match self.cluster {
            Some(_) => format!("{{{prefix}}}"),
            None => prefix.to_owned(),
        }
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The connection, made first if there is none: the cluster's, or the
    /// master the Sentinels name.
    async fn connection(&self) -> RedisResult<Link> {
        if let Some(link) = self.current.lock().unwrap().clone() {
            return Ok(link);
        }
        if let Some(cluster) = &self.cluster {
            let connect = tokio::time::timeout(TIMEOUT, cluster.get_async_connection()).await;
            let link =
                Link::Cluster(connect.map_err(|_| RedisError::from((ErrorKind::Io, "cluster connect timed out")))??);
            return Ok(self.current.lock().unwrap().get_or_insert(link).clone());
        }
        self.follow_master().await?;
        let current = self.current.lock().unwrap().clone();
        current.ok_or_else(|| RedisError::from((ErrorKind::Io, "no master known to the sentinels")))
    }

    /// Asks the Sentinels which node is master (at most every
    /// [`SENTINEL_RECHECK`]) and moves the connection there if it changed.
    async fn follow_master(&self) -> RedisResult<()> {
        let Some(sentinels) = &self.sentinels else { return Ok(()) };
        let mut client = sentinels.client.lock().await;
        {
            let mut master = sentinels.master.lock().unwrap();
            let recent = master.asked.is_some_and(|at| at.elapsed() < SENTINEL_RECHECK);
            if recent && self.current.lock().unwrap().is_some() {
                return Ok(());
            }
            master.asked = Some(Instant::now());
        }
        let asked = tokio::time::timeout(TIMEOUT, client.async_get_client()).await;
        let master_client = asked.map_err(|_| RedisError::from((ErrorKind::Io, "the sentinels did not answer")))??;
        let addr = master_client.get_connection_info().addr().to_string();
        if sentinels.master.lock().unwrap().addr.as_deref() == Some(addr.as_str()) {
            return Ok(());
        }
        let manager = master_client.get_connection_manager_lazy(manager_config())?;
        *self.current.lock().unwrap() = Some(Link::One(manager));
        let previous = sentinels.master.lock().unwrap().addr.replace(addr.clone());
        match previous {
            Some(old) => {
                tracing::warn!(%old, master = %addr, "redis: the sentinels name a new master; connecting to it");
                sentinels.failovers.fetch_add(1, Relaxed);
            }
            None => tracing::info!(master = %addr, "redis: connecting to the master the sentinels name"),
        }
        Ok(())
    }

    /// How many times the connection moved to a new master. Replication is
    /// asynchronous: the last writes to the old one may be missing.
    pub fn failovers(&self) -> u64 {
        self.sentinels.as_ref().map_or(0, |sentinels| sentinels.failovers.load(Relaxed))
    }

    /// After a failed command: whether to send it again. On a cluster, a
    /// command that met its slot moving (ASK or MOVED past the client's own
    /// redirects, TRYAGAIN for keys split between the nodes, a transaction
    /// aborted for either) ran nowhere, and is sent again for up to
    /// [`MIGRATION_WAIT`]. A master that is gone or no longer master sends
    /// the connection to whichever the Sentinels name now.
    async fn again(&self, err: &RedisError, started: Instant) -> bool {
        if self.cluster.is_some() {
            let moving = matches!(
                err.kind(),
                ErrorKind::Server(
                    ServerErrorKind::Ask
                        | ServerErrorKind::Moved
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ExecAbort
                        | ServerErrorKind::ClusterDown
                )
            );
            if moving && started.elapsed() < MIGRATION_WAIT {
                tokio::time::sleep(MIGRATION_PAUSE).await;
                return true;
            }
            return false;
        }
        self.failed(err).await;
        false
    }

    /// A master that is gone or no longer master sends the connection to
    /// whichever the Sentinels name now.
    async fn failed(&self, err: &RedisError) {
        let master_lost = err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
            || err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly);
        if self.sentinels.is_some() && master_lost {
            if let Err(err) = self.follow_master().await {
                tracing::warn!(%err, "redis: the sentinels could not name a master");
            }
        }
    }
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let started = Instant::now();
            loop {
                let result = match self.connection().await? {
                    Link::One(mut conn) => conn.req_packed_command(cmd).await,
                    Link::Cluster(mut conn) => conn.req_packed_command(cmd).await,
                };
                match result {
                    Err(err) if self.again(&err, started).await => continue,
                    result => return result,
                }
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let started = Instant::now();
            loop {
                let result = match self.connection().await? {
                    Link::One(mut conn) => conn.req_packed_commands(pipeline, offset, count).await,
                    Link::Cluster(mut conn) => conn.req_packed_commands(pipeline, offset, count).await,
                };
                match result {
                    Err(err) if self.again(&err, started).await => continue,
                    result => return result,
                }
            }
        })
    }

    fn get_db(&self) -> i64 {
        match self.current.lock().unwrap().as_ref() {
            Some(Link::One(conn)) => conn.get_db(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a runtime: a lazy connection still spawns its task.
    #[tokio::test]
    async fn a_sentinel_url_needs_sentinels_and_a_master_name() {
        assert!(Redis::open("redis://127.0.0.1:6379").is_ok());
        assert!(Redis::open("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster").is_ok());
        assert!(Redis::open("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").is_ok());
        assert!(Redis::open("redis+cluster://").is_err());
        for bad in ["redis+sentinel://127.0.0.1:26379", "redis+sentinel:///mymaster", "redis+sentinel://a:1/"] {
            assert!(Redis::open(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn on_a_cluster_every_key_shares_one_hash_tag() {
        assert_eq!(Redis::open("redis://127.0.0.1:6379").unwrap().key_prefix("fk:"), "fk:");
        assert_eq!(Redis::open("redis+cluster://127.0.0.1:7000").unwrap().key_prefix("fk:"), "{fk:}");
    }
}
