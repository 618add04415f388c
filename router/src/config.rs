use std::net::SocketAddr;

use clap::Parser;

use crate::protocol::DEFAULT_MAX_DATA;

/// The router: fan-out hub between backends and gateways.
#[derive(Parser, Debug, Clone)]
#[command(name = "router", version, args_override_self = true)]
pub struct Config {
    /// TOML file whose keys mirror these flags (`max_connections = 5000`); the command line wins over it, it over the environment.
    #[arg(long, env = "ROUTER_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// fooking binary protocol listener, for gateways and backends.
    #[arg(long, env = "ROUTER_LISTEN", default_value = "127.0.0.1:9010")]
    pub listen: SocketAddr,
    /// JSON HTTP API listener.
    #[arg(long, env = "ROUTER_HTTP", default_value = "127.0.0.1:9011")]
    pub http: SocketAddr,
    /// Keep membership in Redis (redis://HOST:PORT) instead of in memory.
    #[arg(long, env = "ROUTER_REDIS")]
    pub redis: Option<String>,
    /// Prefix of every Redis key the router writes.
    #[arg(long, env = "ROUTER_REDIS_PREFIX", default_value = "fk:")]
    pub redis_prefix: String,
    /// Largest frame data accepted, in bytes; a larger frame closes that connection.
    #[arg(long, env = "ROUTER_MAX_FRAME", default_value_t = DEFAULT_MAX_DATA)]
    pub max_frame: usize,
    /// Shared secret: gateways, backends (AUTH frame) and HTTP calls
    /// (`Authorization: Bearer`) must present it.
    #[arg(long, env = "ROUTER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Allow listening beyond loopback without a token.
    #[arg(long, env = "ROUTER_INSECURE")]
    pub insecure: bool,
    /// Milliseconds a gateway's lease lasts (with Redis): a gateway no router
    /// has heard from for this long is dead, and its sessions are ended.
    #[arg(long, env = "ROUTER_GATEWAY_LEASE_MS", default_value_t = 10_000)]
    pub gateway_lease_ms: u64,
    /// Connections served at once per listener.
    #[arg(long, env = "ROUTER_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
}
