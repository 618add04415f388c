//! The gateway: holds client connections and turns each connect, message
//! and close into a FastCGI request; delivers replies and router pushes.
//!
//! `http` accepts and upgrades WebSocket clients, `tcp` accepts fooking's
//! length-framed ones, `session` runs each client, `fastcgi`
//! talks to the backend, `router_link` talks to the routers.

pub mod config;
pub mod fastcgi;
pub mod framing;
pub mod http;
pub mod router_link;
pub mod session;
pub mod tcp;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use fastcgi::{ParamBlock, Upstreams};
use router_link::RouterLinks;
use session::event::EventEncoder;
use session::Registry;

/// tungstenite allocates its read buffer up front (128 KiB by default) and
/// reads at most this much per call: small keeps idle connections cheap.
const WS_READ_BUFFER: usize = 256;
/// Queued frames are written once they pass this, or on flush; the session
/// flushes after each reply and each batch of pushes, so a fan-out burst
/// goes out in one write.
const WS_WRITE_BUFFER: usize = 16 * 1024;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 100_000;

/// Everything a session needs, shared by all of them.
pub struct Gateway {
    pub config: Config,
    pub upstreams: Upstreams,
    pub registry: Arc<Registry>,
    pub links: RouterLinks,
    pub events: EventEncoder,
    pub ws_config: WebSocketConfig,
}

impl Gateway {
    pub fn outbox_limits(&self) -> session::outbox::Limits {
        session::outbox::Limits { messages: self.config.outbound_queue, bytes: self.config.outbound_queue_bytes }
    }
}

/// Params each connection sets for itself; a static param of that name is ignored.
const CONNECTION_PARAMS: &[&str] = &["REMOTE_ADDR", "REMOTE_PORT", "REQUEST_URI", "DOCUMENT_URI", "QUERY_STRING"];

fn static_params(config: &Config) -> anyhow::Result<ParamBlock> {
    let defaults = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", concat!("fk-gateway/", env!("CARGO_PKG_VERSION"))),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "POST"),
    ];
    let mut chosen: Vec<(&str, &str)> = Vec::new();
    let configured = config.params.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    for (name, value) in defaults.into_iter().chain(configured) {
        if CONNECTION_PARAMS.contains(&name) {
            tracing::warn!(param = name, "set per connection; the static value is ignored");
            continue;
        }
        chosen.retain(|(n, _)| *n != name);
        chosen.push((name, value));
    }
    let mut block = ParamBlock::default();
    for (name, value) in chosen {
        block.push(name.as_bytes(), value.as_bytes())?;
    }
    Ok(block.compact())
}

/// Binds the listener, then serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("bind {}", config.listen))?;
    let registry = Arc::new(Registry::default());
    let server_id = config.server_id.unwrap_or(std::process::id() as i32);
    let links = RouterLinks::spawn(&config.routers, registry.clone(), server_id, shutdown.clone());
    let upstreams = Upstreams::new(&config.backends, &config.backend_options()).map_err(anyhow::Error::msg)?;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(config.max_message.saturating_mul(2).max(WS_WRITE_BUFFER))
        .max_message_size(Some(config.max_message))
        .max_frame_size(Some(config.max_message));
    tracing::info!(listen = %config.listen, listen_tcp = ?config.listen_tcp, backends = ?config.backends.iter().map(|b| format!("{}={}", b.pool, b.addr)).collect::<Vec<_>>(), routers = ?config.routers, "gateway ready");
    let events = EventEncoder::new(static_params(&config)?, &config.param_prefix);
    let gateway = Arc::new(Gateway { events, config, upstreams, registry, links, ws_config });
    let tcp_front = match gateway.config.listen_tcp {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("bind {addr}"))?),
        None => None,
    };
    let websocket = router::runtime::accept_loop(listener, MAX_CONNECTIONS, shutdown.clone(), {
        let gateway = gateway.clone();
        move |stream, peer| http::serve_connection(stream, peer, gateway.clone())
    });
    let tcp = async {
        if let Some(listener) = tcp_front {
            router::runtime::accept_loop(listener, MAX_CONNECTIONS, shutdown.clone(), move |stream, peer| {
                tcp::serve_connection(stream, peer, gateway.clone())
            })
            .await;
        }
    };
    tokio::join!(websocket, tcp);
    Ok(())
}
