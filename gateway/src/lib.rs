//! The gateway: holds client connections and turns each connect, message
//! and close into a FastCGI request; delivers replies and router pushes.
//!
//! `http` accepts and upgrades, `session` runs each client, `fastcgi`
//! talks to the backend, `router_link` talks to the routers.

pub mod config;
pub mod fastcgi;
pub mod http;
pub mod router_link;
pub mod session;

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use fastcgi::{Backend, BackendOptions};
use router_link::RouterLinks;
use session::event::{EventEncoder, Params};
use session::Registry;

/// Per-connection buffers: tungstenite's default read buffer is 128 KiB.
const WS_BUFFER: usize = 4096;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 100_000;

/// Everything a session needs, shared by all of them.
pub struct Gateway {
    pub config: Config,
    pub backend: Backend,
    pub registry: Arc<Registry>,
    pub links: RouterLinks,
    pub static_params: Params,
    pub ws_config: WebSocketConfig,
}

impl Gateway {
    pub fn event_encoder(&self, base: Arc<Params>) -> EventEncoder {
        let prefixed = |name: &str| Bytes::from(format!("{}{name}", self.config.param_prefix));
        EventEncoder { base, session_param: prefixed("SESSIONID"), event_param: prefixed("EVENT") }
    }
}

fn static_params(config: &Config) -> Params {
    let defaults = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", concat!("fk-gateway/", env!("CARGO_PKG_VERSION"))),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "POST"),
    ];
    let mut params: Params = Vec::new();
    let configured = config.params.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    for (name, value) in defaults.into_iter().chain(configured) {
        params.retain(|(n, _)| n != name.as_bytes());
        params.push((Bytes::copy_from_slice(name.as_bytes()), Bytes::copy_from_slice(value.as_bytes())));
    }
    params
}

/// Binds the listener, then serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("bind {}", config.listen))?;
    let registry = Arc::new(Registry::default());
    let server_id = config.server_id.unwrap_or(std::process::id() as i32);
    let links = RouterLinks::spawn(&config.routers, registry.clone(), server_id, shutdown.clone());
    let backend = Backend::new(
        config.backend.clone(),
        BackendOptions {
            connect_timeout: config.backend_connect_timeout(),
            response_timeout: config.backend_timeout(),
            max_idle: config.backend_max_idle,
        },
    );
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(WS_BUFFER)
        // Frames are written when the buffer passes this or on flush; the
        // session flushes after each reply and after each batch of pushes.
        .write_buffer_size(WS_BUFFER)
        .max_write_buffer_size(config.max_message.saturating_mul(2).max(WS_BUFFER))
        .max_message_size(Some(config.max_message))
        .max_frame_size(Some(config.max_message));
    tracing::info!(listen = %config.listen, backend = %config.backend, routers = ?config.routers, "gateway ready");
    let gateway =
        Arc::new(Gateway { static_params: static_params(&config), config, backend, registry, links, ws_config });
    router::runtime::accept_loop(listener, MAX_CONNECTIONS, shutdown, move |stream| {
        http::serve_connection(stream, gateway.clone())
    })
    .await;
    Ok(())
}
