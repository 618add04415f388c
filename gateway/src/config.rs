use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::fastcgi::{BackendOptions, BackendSpec};

/// The gateway: holds client connections and turns their events into
/// FastCGI requests.
#[derive(Parser, Debug, Clone)]
#[command(name = "gateway", version)]
pub struct Config {
    /// WebSocket (and plain HTTP) listener.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:9005")]
    pub listen: SocketAddr,
    /// Raw TCP listener for fooking's length-framed clients (off unless given).
    #[arg(long, env = "GATEWAY_LISTEN_TCP")]
    pub listen_tcp: Option<SocketAddr>,
    /// FastCGI backend (repeatable): `[POOL=]ADDR[,weight=N][,max_conns=N]`,
    /// ADDR being HOST:PORT or unix:/path. Without POOL=, it joins `default`.
    #[arg(long = "backend", env = "GATEWAY_BACKEND", value_delimiter = ' ', default_value = "127.0.0.1:9001")]
    pub backends: Vec<BackendSpec>,
    /// Router to link to (repeat for several). None: no pushes.
    #[arg(long = "router", env = "GATEWAY_ROUTER", value_delimiter = ',')]
    pub routers: Vec<String>,
    /// A static FastCGI param, NAME=VALUE (repeatable), e.g. SCRIPT_FILENAME=/srv/app.php.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Put this prefix before SESSIONID and EVENT (e.g. HTTP_ for Go's net/http/fcgi).
    #[arg(long, env = "GATEWAY_PARAM_PREFIX", default_value = "")]
    pub param_prefix: String,
    /// Send EVENT=1 when a client connects.
    #[arg(long, env = "GATEWAY_CONNECT_EVENT", default_value_t = true, action = ArgAction::Set)]
    pub connect_event: bool,
    /// Send EVENT=2 when a client leaves.
    #[arg(long, env = "GATEWAY_CLOSE_EVENT", default_value_t = true, action = ArgAction::Set)]
    pub close_event: bool,
    /// This gateway's server id, shown in the router's INFO (default: the process id).
    #[arg(long, env = "GATEWAY_SERVER_ID")]
    pub server_id: Option<i32>,
    /// Milliseconds to wait for a backend connection.
    #[arg(long, env = "GATEWAY_BACKEND_CONNECT_TIMEOUT_MS", default_value_t = 3_000)]
    pub backend_connect_timeout_ms: u64,
    /// Milliseconds to wait for a backend's whole response.
    #[arg(long, env = "GATEWAY_BACKEND_TIMEOUT_MS", default_value_t = 30_000)]
    pub backend_timeout_ms: u64,
    /// Open connections per backend at most, busy or idle (a backend's own max_conns wins).
    #[arg(long, env = "GATEWAY_BACKEND_MAX_CONNS", default_value_t = 256)]
    pub backend_max_conns: usize,
    /// Failures in a row that eject a backend.
    #[arg(long, env = "GATEWAY_BACKEND_MAX_FAILS", default_value_t = 3)]
    pub backend_max_fails: u32,
    /// Milliseconds an ejected backend is skipped before it is probed again.
    #[arg(long, env = "GATEWAY_BACKEND_FAIL_TIMEOUT_MS", default_value_t = 10_000)]
    pub backend_fail_timeout_ms: u64,
    /// Largest client message, in bytes; larger closes the client with 1009.
    #[arg(long, env = "GATEWAY_MAX_MESSAGE", default_value_t = 1 << 20)]
    pub max_message: usize,
    /// Pushes queued for one client before it counts as a slow consumer and is closed (1008).
    #[arg(long, env = "GATEWAY_OUTBOUND_QUEUE", default_value_t = 1024)]
    pub outbound_queue: usize,
    /// Bytes of pushes queued for one client before it counts as a slow consumer (1008).
    #[arg(long, env = "GATEWAY_OUTBOUND_QUEUE_BYTES", default_value_t = 1 << 20)]
    pub outbound_queue_bytes: usize,
    /// Milliseconds a write to a client may take before the client is dropped.
    #[arg(long, env = "GATEWAY_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,
    /// Events of one session queued for the backend before reading from the client pauses.
    #[arg(long, env = "GATEWAY_MAX_PENDING_EVENTS", default_value_t = 64)]
    pub max_pending_events: usize,
}

impl Config {
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn backend_options(&self) -> BackendOptions {
        BackendOptions {
            connect_timeout: Duration::from_millis(self.backend_connect_timeout_ms),
            response_timeout: Duration::from_millis(self.backend_timeout_ms),
            max_conns: self.backend_max_conns,
            max_fails: self.backend_max_fails,
            fail_timeout: Duration::from_millis(self.backend_fail_timeout_ms),
        }
    }
}

fn parse_param(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw.split_once('=').ok_or("expected NAME=VALUE")?;
    if name.is_empty() {
        return Err("the param name is empty".into());
    }
    Ok((name.to_owned(), value.to_owned()))
}
