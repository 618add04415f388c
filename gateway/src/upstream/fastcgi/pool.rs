//! Backends grouped in named pools. A pool shares requests among its
//! backends by weight, skips ejected ones, and fails over to the next
//! backend when a request could not be sent. A request that was sent is
//! never sent twice.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::backend::{Abort, Address, Backend, BackendOptions, UpstreamError};
use super::CgiResponse;

pub const DEFAULT_POOL: &str = "default";

/// `[POOL=]ADDR[,weight=N][,max_conns=N][,keep_conn=on|off]`, where ADDR is `HOST:PORT` or
/// `unix:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    pub pool: String,
    pub addr: Address,
    pub weight: u32,
    pub max_conns: Option<usize>,
    /// Keep connections alive between requests (FCGI_KEEP_CONN, the
    /// default), or open one per request, as nginx does by default: a
    /// php-fpm worker is then tied to a request, not to a connection.
    pub keep_conn: bool,
}

impl FromStr for BackendSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<BackendSpec, String> {
        let mut parts = s.split(',');
        let target = parts.next().unwrap_or_default();
        let (pool, addr) = match target.split_once('=') {
            Some((pool, addr)) if !target.starts_with("unix:") => (pool.to_owned(), addr),
            _ => (DEFAULT_POOL.to_owned(), target),
        };
        let mut spec = BackendSpec { pool, addr: addr.parse()?, weight: 1, max_conns: None, keep_conn: true };
        for option in parts {
            let (key, value) = option.split_once('=').ok_or_else(|| format!("{option}: expected KEY=VALUE"))?;
            let number = || value.parse::<u32>().map_err(|_| format!("{key}: {value} is not a number"));
            match key {
                "weight" if number()? > 0 => spec.weight = number()?,
                "max_conns" if number()? > 0 => spec.max_conns = Some(number()? as usize),
                "weight" | "max_conns" => return Err(format!("{key} must be at least 1")),
                "keep_conn" => match value {
                    "on" => spec.keep_conn = true,
                    "off" => spec.keep_conn = false,
                    _ => return Err(format!("keep_conn is on or off, not {value}")),
                },
                other => return Err(format!("unknown backend option {other} (weight, max_conns, keep_conn)")),
            }
        }
        Ok(spec)
    }
}

pub struct Pool {
    pub name: String,
    backends: Vec<Backend>,
    total_weight: u64,
    turn: AtomicU64,
    in_flight: InFlight,
}

/// Request bytes in flight to all backends, shared by every pool: a call
/// waits for room past the bound.
#[derive(Clone)]
struct InFlight {
    room: Arc<Semaphore>,
    max: usize,
}

impl Pool {
    fn new(name: String, backends: Vec<Backend>, in_flight: InFlight) -> Pool {
        let total_weight = backends.iter().map(|b| b.weight() as u64).sum();
        Pool { name, backends, total_weight, turn: AtomicU64::new(0), in_flight }
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The backends in the order to try them for one request: this turn's
    /// pick by weight first, then the others; ejected ones last, so they
    /// are probed only when nothing else works.
    fn order(&self) -> Vec<&Backend> {
        let mut slot = self.turn.fetch_add(1, Ordering::Relaxed) % self.total_weight.max(1);
        let mut first = 0;
        for (i, backend) in self.backends.iter().enumerate() {
            if slot < backend.weight() as u64 {
                first = i;
                break;
            }
            slot -= backend.weight() as u64;
        }
        let mut order: Vec<&Backend> = self.backends[first..].iter().chain(&self.backends[..first]).collect();
        order.sort_by_key(|b| b.is_ejected());
        order
    }

    pub async fn call(&self, request: &[u8], label: &str, abort: &mut Abort) -> Result<CgiResponse, UpstreamError> {
        let bytes = request.len().min(self.in_flight.max).min(u32::MAX as usize) as u32;
        let _room = self.in_flight.room.acquire_many(bytes).await.expect("never closed");
        let mut last_error = None;
        for backend in self.order() {
            match backend.call(request, label, abort).await {
                Err(err) if err.before_send() => {
                    tracing::warn!(pool = %self.name, %err, "failing over to the next backend");
                    last_error = Some(err);
                }
                result => return result,
            }
        }
        Err(last_error.expect("a pool has at least one backend"))
    }
}

/// Every pool, by name; `default` takes whatever no route sends elsewhere.
pub struct Upstreams {
    pools: Vec<Pool>,
    in_flight: InFlight,
}

impl Upstreams {
    /// `in_flight_bytes`: request bytes in flight to all backends at once.
    pub fn new(specs: &[BackendSpec], options: &BackendOptions, in_flight_bytes: usize) -> Result<Upstreams, String> {
        let max = in_flight_bytes.clamp(1, Semaphore::MAX_PERMITS);
        let in_flight = InFlight { room: Arc::new(Semaphore::new(max)), max };
        let mut pools: Vec<(String, Vec<Backend>)> = Vec::new();
        for spec in specs {
            let max_conns = spec.max_conns.unwrap_or(options.max_conns);
            let options = BackendOptions { max_conns, keep_conn: spec.keep_conn, ..options.clone() };
            let backend = Backend::new(spec.addr.clone(), spec.weight, options);
            match pools.iter_mut().find(|(name, _)| *name == spec.pool) {
                Some((_, backends)) => backends.push(backend),
                None => pools.push((spec.pool.clone(), vec![backend])),
            }
        }
        if !pools.iter().any(|(name, _)| name == DEFAULT_POOL) {
            return Err(format!("no backend in the {DEFAULT_POOL} pool: give one --backend without a POOL= prefix"));
        }
        let pools = pools.into_iter().map(|(name, backends)| Pool::new(name, backends, in_flight.clone())).collect();
        Ok(Upstreams { pools, in_flight })
    }

    /// Request bytes in flight to the backends now.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight.max - self.in_flight.room.available_permits()
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn default_pool(&self) -> &Pool {
        self.pool(DEFAULT_POOL).expect("checked in new")
    }

    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn specs_parse_pools_weights_and_caps() {
        let spec: BackendSpec = "127.0.0.1:9001".parse().unwrap();
        assert_eq!((spec.pool.as_str(), spec.weight, spec.max_conns), (DEFAULT_POOL, 1, None));
        let spec: BackendSpec = "unix:/run/php.sock,weight=3,max_conns=8".parse().unwrap();
        assert_eq!(spec.addr, Address::Unix("/run/php.sock".into()));
        assert_eq!((spec.weight, spec.max_conns, spec.keep_conn), (3, Some(8), true));
        let spec: BackendSpec = "127.0.0.1:9003,keep_conn=off".parse().unwrap();
        assert!(!spec.keep_conn);
        assert!("127.0.0.1:9003,keep_conn=maybe".parse::<BackendSpec>().is_err());
        let spec: BackendSpec = "chat=127.0.0.1:9003".parse().unwrap();
        assert_eq!(spec.pool, "chat");
        assert!("127.0.0.1:1,weight=0".parse::<BackendSpec>().is_err());
        assert!("127.0.0.1:1,colour=red".parse::<BackendSpec>().is_err());
    }

    #[test]
    fn turns_follow_the_weights() {
        let options = BackendOptions {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            max_conns: 1,
            keep_conn: true,
            max_fails: 3,
            fail_timeout: Duration::from_secs(1),
            max_response: 1 << 20,
            stderr_level: tracing::Level::WARN,
        };
        let specs: Vec<BackendSpec> =
            ["127.0.0.1:1", "127.0.0.1:2,weight=3"].iter().map(|s| s.parse().unwrap()).collect();
        let upstreams = Upstreams::new(&specs, &options, 1 << 20).unwrap();
        let pool = upstreams.default_pool();
        let firsts: Vec<String> = (0..8).map(|_| pool.order()[0].addr().to_string()).collect();
        assert_eq!(firsts.iter().filter(|a| *a == "127.0.0.1:2").count(), 6);
        assert_eq!(pool.order().len(), 2, "the others follow for failover");
        assert!(
            Upstreams::new(&["chat=127.0.0.1:1".parse().unwrap()], &options, 1 << 20).is_err(),
            "a default pool is required"
        );
    }
}
