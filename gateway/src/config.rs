use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::upstream::fastcgi::{BackendOptions, BackendSpec};
use crate::upstream::routing::Route;

/// The gateway: holds client connections and turns their events into
/// FastCGI requests.
#[derive(Parser, Debug, Clone)]
#[command(name = "gateway", version, args_override_self = true)]
pub struct Config {
    /// TOML file whose keys mirror these flags (`max_connections = 5000`); the command line wins over it, it over the environment.
    #[arg(long, env = "GATEWAY_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// WebSocket (and plain HTTP) listener.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:9005")]
    pub listen: SocketAddr,
    /// Raw TCP listener for fooking's length-framed clients (off unless given).
    #[arg(long, env = "GATEWAY_LISTEN_TCP")]
    pub listen_tcp: Option<SocketAddr>,
    /// WebSocket (and plain HTTP) listener over TLS (wss://); needs
    /// --tls-cert and --tls-key. SIGHUP reloads them.
    #[arg(long, env = "GATEWAY_LISTEN_TLS", requires_all = ["tls_cert", "tls_key"])]
    pub listen_tls: Option<SocketAddr>,
    /// Raw TCP listener over TLS for length-framed clients; needs
    /// --tls-cert and --tls-key, the same as --listen-tls.
    #[arg(long, env = "GATEWAY_LISTEN_TCP_TLS", requires_all = ["tls_cert", "tls_key"])]
    pub listen_tcp_tls: Option<SocketAddr>,
    /// The certificate chain for --listen-tls and --listen-tcp-tls, PEM, leaf first.
    #[arg(long, env = "GATEWAY_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key for --listen-tls and --listen-tcp-tls, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "GATEWAY_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,
    /// FastCGI backend (repeatable): `[POOL=]ADDR[,weight=N][,max_conns=N]`,
    /// ADDR being HOST:PORT or unix:/path. Without POOL=, it joins `default`.
    #[arg(long = "backend", env = "GATEWAY_BACKEND", value_delimiter = ' ', default_value = "127.0.0.1:9001")]
    pub backends: Vec<BackendSpec>,
    /// Router to link to (repeat for several). None: no pushes.
    #[arg(long = "router", env = "GATEWAY_ROUTER", value_delimiter = ',')]
    pub routers: Vec<String>,
    /// Milliseconds between heartbeats on each router link; a router silent for three of its own intervals is taken for dead and linked again.
    #[arg(long, env = "GATEWAY_LINK_HEARTBEAT_MS", default_value_t = protocol::DEFAULT_HEARTBEAT_MS)]
    pub link_heartbeat_ms: u64,
    /// Largest frame data taken from a router, in bytes; give routers and gateways the same (the routers refuse larger pushes).
    #[arg(long, env = "GATEWAY_MAX_FRAME", default_value_t = protocol::DEFAULT_MAX_DATA)]
    pub max_frame: usize,
    /// The routers' --token, to authenticate the links.
    #[arg(long, env = "GATEWAY_ROUTER_TOKEN", hide_env_values = true)]
    pub router_token: Option<String>,
    /// A static FastCGI param, NAME=VALUE (repeatable), e.g. SCRIPT_FILENAME=/srv/app.php; in the environment, one per line.
    #[arg(long = "param", env = "GATEWAY_PARAM", value_delimiter = '\n', value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Static params from a file in nginx's syntax, `fastcgi_param NAME VALUE;` (repeatable): the file nginx/debug.conf includes, so curl and the gateway give a backend the same params from one place. A `--param` wins over it.
    #[arg(long = "param-file", env = "GATEWAY_PARAM_FILE", value_delimiter = ' ', value_name = "FILE")]
    pub param_files: Vec<std::path::PathBuf>,
    /// Put this prefix before SESSIONID and EVENT (e.g. HTTP_ for Go's net/http/fcgi).
    #[arg(long, env = "GATEWAY_PARAM_PREFIX", default_value = "")]
    pub param_prefix: String,
    /// Let clients ask to join a channel, with the message `{"fk":"subscribe","channel":NAME}`: the backend decides (EVENT=5), and only its 2xx joins.
    #[arg(long, env = "GATEWAY_CLIENT_SUBSCRIBE", default_value_t = false, action = ArgAction::Set)]
    pub client_subscribe: bool,
    /// Channels a session may be in when its client asks to join one more (--client-subscribe): past it, the ask is refused (429) without asking the backend.
    #[arg(long, env = "GATEWAY_MAX_SESSION_CHANNELS", default_value_t = 128)]
    pub max_session_channels: usize,
    /// Channels with members on this gateway at most for a client's ask to join a new one (--client-subscribe): past it, the ask is refused (503). Keep it within the routers' --max-channels-per-gateway.
    #[arg(long, env = "GATEWAY_MAX_CHANNELS", default_value_t = 262_144)]
    pub max_channels: usize,
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
    /// Milliseconds a close or offline event is tried again, with backoff, while the backend is down; then it is given up (logged, counted).
    #[arg(long, env = "GATEWAY_EVENT_RETRY_MS", default_value_t = 30_000)]
    pub event_retry_ms: u64,
    /// Open connections per backend at most, busy or idle (a backend's own max_conns wins).
    #[arg(long, env = "GATEWAY_BACKEND_MAX_CONNS", default_value_t = 256)]
    pub backend_max_conns: usize,
    /// Failures in a row that eject a backend.
    #[arg(long, env = "GATEWAY_BACKEND_MAX_FAILS", default_value_t = 3)]
    pub backend_max_fails: u32,
    /// Milliseconds an ejected backend is skipped before it is probed again.
    #[arg(long, env = "GATEWAY_BACKEND_FAIL_TIMEOUT_MS", default_value_t = 10_000)]
    pub backend_fail_timeout_ms: u64,
    /// Answer a client's message with the gateway's error frame (code 502) when the backend answers 5xx with an empty body, as when the backend fails.
    #[arg(long, env = "GATEWAY_ERROR_REPLY", default_value_t = true, action = ArgAction::Set)]
    pub error_reply: bool,
    /// The level at which the backend's STDERR lines (PHP's error_log) are logged: error, warn, info, debug or trace.
    #[arg(long, env = "GATEWAY_BACKEND_STDERR_LEVEL", default_value = "warn")]
    pub backend_stderr_level: tracing::Level,
    /// Log format: text, or json (one object per line, for log shippers).
    #[arg(long, env = "GATEWAY_LOG_FORMAT", default_value = "text")]
    pub log_format: runtime::LogFormat,
    /// Largest client message, in bytes; larger closes the client with 1009.
    #[arg(long, env = "GATEWAY_MAX_MESSAGE", default_value_t = 1 << 20)]
    pub max_message: usize,
    /// Offer permessage-deflate (RFC 7692) to WebSocket clients that ask, without context takeover: an idle connection holds no compressor, and a broadcast is compressed once.
    #[arg(long, env = "GATEWAY_DEFLATE", default_value_t = true, action = ArgAction::Set)]
    pub deflate: bool,
    /// Bytes a second a client's compressed messages may inflate to (0: no limit), up to one --max-message at once: each message's inflater stops at what is left, and a message that would pass it closes the client (1008).
    #[arg(long, env = "GATEWAY_MAX_INFLATE_RATE", default_value_t = 4 << 20)]
    pub max_inflate_rate: u32,
    /// A compressed message may inflate to this many times its size, past its first 64 KiB (0: no limit); more closes the client (1008). JSON compresses 5 to 20 times; a decompression bomb a thousand.
    #[arg(long, env = "GATEWAY_MAX_INFLATE_RATIO", default_value_t = 64)]
    pub max_inflate_ratio: u32,
    /// Messages shorter than this many bytes go out uncompressed, even to clients that agreed to compression.
    #[arg(long, env = "GATEWAY_DEFLATE_MIN_BYTES", default_value_t = 128)]
    pub deflate_min_bytes: u32,
    /// Pushes queued for one client before it counts as a slow consumer and is closed (1008).
    #[arg(long, env = "GATEWAY_OUTBOUND_QUEUE", default_value_t = 1024)]
    pub outbound_queue: usize,
    /// Bytes of pushes queued for one client before it counts as a slow consumer (1008).
    #[arg(long, env = "GATEWAY_OUTBOUND_QUEUE_BYTES", default_value_t = 1 << 20)]
    pub outbound_queue_bytes: usize,
    /// Milliseconds a write to a client may take before the client is dropped.
    #[arg(long, env = "GATEWAY_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,
    /// Messages of one session queued for the backend; past it, messages are refused with an error (429).
    #[arg(long, env = "GATEWAY_MAX_PENDING_EVENTS", default_value_t = 64)]
    pub max_pending_events: usize,
    /// Bytes of one session's messages queued for the backend; past it, messages are refused with an error (429). One message always fits.
    #[arg(long, env = "GATEWAY_MAX_PENDING_BYTES", default_value_t = 1 << 20)]
    pub max_pending_bytes: usize,
    /// Bytes of requests in flight to all backends at once; past it, events wait for room.
    #[arg(long, env = "GATEWAY_BACKEND_INFLIGHT_BYTES", default_value_t = 64 << 20)]
    pub backend_inflight_bytes: usize,
    /// Largest backend response, in bytes; past it the request fails (logged) and the client gets the backend-failure error.
    #[arg(long, env = "GATEWAY_MAX_RESPONSE_BYTES", default_value_t = 4 << 20)]
    pub max_response_bytes: usize,
    /// Bytes of a connection's own params (address, URI, headers), sent with every event; a larger upgrade or request gets 431.
    #[arg(long, env = "GATEWAY_MAX_HEADER_BYTES", default_value_t = 8 << 10)]
    pub max_header_bytes: usize,
    /// Messages a second one client may send, on average (0: no limit); past it, close 1008.
    #[arg(long, env = "GATEWAY_MAX_MESSAGE_RATE", default_value_t = 1000.0)]
    pub max_message_rate: f32,
    /// Messages one client may send at once above the rate.
    #[arg(long, env = "GATEWAY_MAX_MESSAGE_BURST", default_value_t = 2000)]
    pub max_message_burst: u32,
    /// Clients connected at once; past it, new ones are closed with 1013.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,
    /// New connections a second from one address, on average (0: no limit); past it, 429.
    #[arg(long, env = "GATEWAY_MAX_CONNECT_RATE_PER_IP", default_value_t = 1000.0)]
    pub max_connect_rate_per_ip: f32,
    /// New connections one address may open at once above the rate.
    #[arg(long, env = "GATEWAY_MAX_CONNECT_BURST_PER_IP", default_value_t = 2000)]
    pub max_connect_burst_per_ip: u32,
    /// Connections one address may hold at once (0: no limit; many clients may share an address behind NAT); past it, 429.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,
    /// IPv6 clients count for the per-address limits by this many leading bits of their address (a /64 is usually one subscriber's); IPv4 by the whole address.
    #[arg(long, env = "GATEWAY_IPV6_PREFIX", default_value_t = 64, value_parser = clap::value_parser!(u8).range(0..=128))]
    pub ipv6_prefix: u8,
    /// Connections served at once before they are sessions: in their TLS handshake, HTTP requests and upgrade, over every listener. Past it, new connections wait in the kernel's backlog. Sessions count against --max-connections instead.
    #[arg(long, env = "GATEWAY_MAX_HANDSHAKES", default_value_t = 10_000)]
    pub max_handshakes: usize,
    /// A proxy (CIDR, repeatable) whose X-Forwarded-For or X-Real-IP names the client: its address then counts for the limits and is REMOTE_ADDR. None by default.
    #[arg(long = "trusted-proxy", env = "GATEWAY_TRUSTED_PROXY", value_delimiter = ' ')]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Allowed WebSocket Origin (repeatable); none given allows any. Others get 403.
    #[arg(long = "allowed-origin", env = "GATEWAY_ALLOWED_ORIGIN", value_delimiter = ' ')]
    pub allowed_origins: Vec<String>,
    /// Milliseconds between the gateway's pings to each client.
    #[arg(long, env = "GATEWAY_PING_INTERVAL_MS", default_value_t = 25_000)]
    pub ping_interval_ms: u64,
    /// Milliseconds a client may stay silent (not even a pong) before it is closed (1001).
    #[arg(long, env = "GATEWAY_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// Milliseconds a drain (SIGTERM) may take to close every client and deliver their close events.
    #[arg(long, env = "GATEWAY_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
    /// Milliseconds a resumable session whose client dropped waits for it to come back (0: no resume).
    #[arg(long, env = "GATEWAY_RESUME_GRACE_MS", default_value_t = 30_000)]
    pub resume_grace_ms: u64,
    /// Messages a resumable session keeps: pushed while its client is away, and the last ones written to it.
    #[arg(long, env = "GATEWAY_RESUME_BUFFER_MESSAGES", default_value_t = 1000)]
    pub resume_buffer_messages: usize,
    /// Bytes of the same. An offline session that passes either bound ends (close event).
    #[arg(long, env = "GATEWAY_RESUME_BUFFER_BYTES", default_value_t = 1 << 20)]
    pub resume_buffer_bytes: usize,
    /// Bytes all resumable sessions keep at most, in all: their replay logs and what waits for those whose client is away (a payload kept by many counts once). Past it, a replay log keeps only what fits and an offline session that would grow ends.
    #[arg(long, env = "GATEWAY_RESUME_BUFFER_TOTAL_BYTES", default_value_t = 256 << 20)]
    pub resume_buffer_total_bytes: usize,
    /// Key that signs resume tokens; every gateway of a cluster needs the same. Default: random, so tokens work on this process only.
    #[arg(long, env = "GATEWAY_RESUME_SECRET", hide_env_values = true)]
    pub resume_secret: Option<String>,
    /// Admin listener for GET /metrics and /healthz (off unless given).
    #[arg(long, env = "GATEWAY_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// Forward plain HTTP requests under this path prefix to a backend pool
    /// as CGI requests (repeatable): `/api/` or `/api/=POOL` (default pool).
    #[arg(long = "http-route", env = "GATEWAY_HTTP_ROUTE", value_delimiter = ' ')]
    pub http_routes: Vec<HttpRoute>,
    /// A file to serve on GET PATH (repeatable): `/=examples/chat/index.html`. Read once at start; none by default.
    #[arg(long = "page", env = "GATEWAY_PAGE", value_delimiter = ' ', value_name = "PATH=FILE", value_parser = parse_page)]
    pub pages: Vec<(String, std::path::PathBuf)>,
    /// Route client messages to a named pool (repeatable): FIELD:PATTERN=POOL or bin:LOW-HIGH=POOL.
    #[arg(long = "route", env = "GATEWAY_ROUTE", value_delimiter = ' ')]
    pub routes: Vec<Route>,
    /// A Pusher app whose clients (pusher-js, Laravel Echo) connect at
    /// `/app/KEY` (repeatable): `ID:KEY:SECRET`, then `:client-events` to
    /// relay client events, or `:client-events=backend` to put each to the
    /// backend first (EVENT=8). The routers take the same. See docs/PUSHER.md.
    #[arg(long = "pusher-app", env = "GATEWAY_PUSHER_APP", value_delimiter = ' ', hide_env_values = true)]
    pub pusher_apps: Vec<protocol::pusher::App>,
}

impl Config {
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn event_retry(&self) -> Duration {
        Duration::from_millis(self.event_retry_ms)
    }

    pub fn backend_options(&self) -> BackendOptions {
        BackendOptions {
            connect_timeout: Duration::from_millis(self.backend_connect_timeout_ms),
            response_timeout: Duration::from_millis(self.backend_timeout_ms),
            max_conns: self.backend_max_conns,
            keep_conn: true,
            max_fails: self.backend_max_fails,
            fail_timeout: Duration::from_millis(self.backend_fail_timeout_ms),
            max_response: self.max_response_bytes,
            stderr_level: self.backend_stderr_level,
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

fn parse_page(raw: &str) -> Result<(String, std::path::PathBuf), String> {
    match raw.split_once('=') {
        Some((path, file)) if path.starts_with('/') && !file.is_empty() => Ok((path.to_owned(), file.into())),
        _ => Err(format!("{raw}: expected /PATH=FILE")),
    }
}

/// A path prefix whose plain HTTP requests go to a backend pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub prefix: String,
    pub pool: String,
}

impl std::str::FromStr for HttpRoute {
    type Err = String;
    fn from_str(s: &str) -> Result<HttpRoute, String> {
        let (prefix, pool) = s.split_once('=').unwrap_or((s, crate::upstream::fastcgi::DEFAULT_POOL));
        if !prefix.starts_with('/') || pool.is_empty() {
            return Err(format!("{s}: expected /PREFIX or /PREFIX=POOL"));
        }
        Ok(HttpRoute { prefix: prefix.to_owned(), pool: pool.to_owned() })
    }
}
