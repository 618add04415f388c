//! The gateway: holds client connections and turns each connect, message
//! and close into a FastCGI request; delivers replies and router pushes.
//!
//! `http` accepts and upgrades WebSocket clients, `tcp` accepts fooking's
//! length-framed ones, `session` runs each client, `fastcgi`
//! talks to the backend, `router_link` talks to the routers, `handover`
//! brings a resumed session to its new connection.

pub mod config;
pub mod fastcgi;
pub mod framing;
pub mod handover;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod router_link;
pub mod routing;
pub mod session;
pub mod tcp;

use std::sync::Arc;

use anyhow::Context;
use runtime::Shutdown;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use config::Config;
use fastcgi::{ParamBlock, Upstreams};
use limits::{AddressPlace, KeyedRate, PerAddress};
use metrics::Metrics;
use protocol::handover::GatewayId;
use router_link::{RouterAsk, RouterLinks};
use routing::Routes;
use session::event::EventEncoder;
use session::resume::TokenKey;
use session::Registry;

/// tungstenite allocates its read buffer up front (128 KiB by default) and
/// reads at most this much per call: small keeps idle connections cheap.
const WS_READ_BUFFER: usize = 256;
/// Queued frames are written once they pass this, or on flush; the session
/// flushes after each reply and each batch of pushes, so a fan-out burst
/// goes out in one write.
const WS_WRITE_BUFFER: usize = 16 * 1024;
/// Connections in their HTTP phase at once (sessions are limited apart).
const MAX_HANDSHAKES: usize = 10_000;

/// Everything a session needs, shared by all of them.
pub struct Gateway {
    pub config: Config,
    pub upstreams: Upstreams,
    pub routes: Routes,
    pub metrics: Metrics,
    pub connect_rate: KeyedRate<std::net::IpAddr>,
    pub per_address: Arc<PerAddress>,
    /// Places taken under `--max-connections`.
    pub seats: Arc<std::sync::atomic::AtomicUsize>,
    pub registry: Arc<Registry>,
    pub links: RouterLinks,
    pub events: EventEncoder,
    pub ws_config: WebSocketConfig,
    pub resume_keys: TokenKey,
}

impl Gateway {
    pub fn outbox_limits(&self) -> session::outbox::Limits {
        session::outbox::Limits {
            messages: self.config.outbound_queue,
            bytes: self.config.outbound_queue_bytes,
            parked_messages: self.config.resume_buffer_messages,
            parked_bytes: self.config.resume_buffer_bytes,
        }
    }
}

/// Params each connection sets for itself; a static param of that name is ignored.
const CONNECTION_PARAMS: &[&str] =
    &["REMOTE_ADDR", "REMOTE_PORT", "REQUEST_URI", "DOCUMENT_URI", "QUERY_STRING", "REQUEST_METHOD"];

fn static_params(config: &Config) -> anyhow::Result<ParamBlock> {
    let defaults = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", concat!("fk-gateway/", env!("CARGO_PKG_VERSION"))),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
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

impl Gateway {
    /// Whether a new client from `ip` may connect: its address's rate and
    /// connections, then the connection limit. Counts the refusals.
    pub fn admit(&self, ip: std::net::IpAddr) -> Admission {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.connect_rate.allow(ip) {
            self.metrics.refused_ip_rate.fetch_add(1, Relaxed);
            return Admission::TooFast;
        }
        let Some(place) = self.per_address.take(ip) else {
            self.metrics.refused_ip_connections.fetch_add(1, Relaxed);
            return Admission::TooMany;
        };
        // Taken at the moment of decision, not counted from the registry
        // later: two upgrades racing for the last seat cannot both get it.
        let max = self.config.max_connections;
        if self.seats.fetch_update(Relaxed, Relaxed, |taken| (taken < max).then_some(taken + 1)).is_err() {
            self.metrics.refused_full.fetch_add(1, Relaxed);
            self.metrics.closed(session::close::CloseReason::ServerFull);
            return Admission::Full;
        }
        Admission::Welcome(Seat { taken: self.seats.clone(), _address: place })
    }
}

pub enum Admission {
    Welcome(Seat),
    /// Past its address's connect rate.
    TooFast,
    /// Past its address's connections.
    TooMany,
    Full,
}

/// One of the `--max-connections` places, and one of its address's, held
/// by a session for its whole life and given back when it ends.
pub struct Seat {
    taken: Arc<std::sync::atomic::AtomicUsize>,
    _address: AddressPlace,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.taken.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Binds the listeners, serves until `shutdown` is cancelled, then drains:
/// every client is closed (1001) and its close event delivered, within
/// the drain timeout.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    runtime::no_empty_secrets(&[("--router-token", &config.router_token), ("--resume-secret", &config.resume_secret)])?;
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("bind {}", config.listen))?;
    let tcp_front = match config.listen_tcp {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("bind {addr}"))?),
        None => None,
    };
    let registry = Arc::new(Registry::default());
    let server_id = config.server_id.unwrap_or(std::process::id() as i32);
    // The links outlive the listeners: a drain still reports its closes.
    let links_shutdown = Shutdown::new();
    let router_token = bytes::Bytes::from(config.router_token.clone().unwrap_or_default());
    // Random per start: with the server id, this gateway's identity in the
    // routers' leases, distinct from any earlier run's.
    let worker_id =
        (std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), std::process::id()) & 0x7fff_ffff) as i32;
    let (asks_tx, asks) = tokio::sync::mpsc::channel(ROUTER_ASKS);
    let identity = GatewayId { server_id, worker_id };
    let links = RouterLinks::spawn(
        &config.routers,
        router_token,
        config.link_settings(),
        registry.clone(),
        identity,
        asks_tx,
        links_shutdown.clone(),
    );
    if config.resume_secret.is_none() && !config.routers.is_empty() && config.resume_grace_ms > 0 {
        tracing::warn!("no --resume-secret: sessions resume on this gateway only, not on others of the cluster");
    }
    let upstreams = Upstreams::new(&config.backends, &config.backend_options(), config.backend_inflight_bytes)
        .map_err(anyhow::Error::msg)?;
    let routes = Routes::new(config.routes.clone(), &upstreams).map_err(anyhow::Error::msg)?;
    if let Some(route) = config.http_routes.iter().find(|r| upstreams.pool(&r.pool).is_none()) {
        anyhow::bail!("--http-route {} names pool {:?}, which has no --backend", route.prefix, route.pool);
    }
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        // Room for the write threshold plus the largest burst the outbox
        // admits (or a reply); tungstenite insists on more than the threshold.
        .max_write_buffer_size(
            WS_WRITE_BUFFER
                + config.outbound_queue_bytes.max(config.max_message).max(config.max_frame).saturating_mul(2),
        )
        .max_message_size(Some(config.max_message))
        .max_frame_size(Some(config.max_message));
    let backends: Vec<String> = config.backends.iter().map(|b| format!("{}={}", b.pool, b.addr)).collect();
    tracing::info!(listen = %config.listen, listen_tcp = ?config.listen_tcp, ?backends, routers = ?config.routers, admin = ?config.admin, "gateway ready");
    let gateway = Arc::new(Gateway {
        resume_keys: TokenKey::new(config.resume_secret.as_deref()),
        events: EventEncoder::new(static_params(&config)?, &config.param_prefix),
        connect_rate: KeyedRate::new(config.max_connect_rate_per_ip, config.max_connect_burst_per_ip as f32),
        per_address: Arc::new(PerAddress::new(config.max_connections_per_ip)),
        seats: Arc::default(),
        config,
        upstreams,
        routes,
        metrics: Metrics::default(),
        registry,
        links,
        ws_config,
    });
    let admin_shutdown = Shutdown::new();
    if let Some(addr) = gateway.config.admin {
        let gateway = gateway.clone();
        let serve =
            runtime::metrics::serve_admin(addr, admin_shutdown.clone(), move || gateway.metrics.render(&gateway));
        tokio::spawn(async move {
            if let Err(err) = serve.await {
                tracing::error!(%err, "admin listener failed");
            }
        });
    }
    tokio::spawn(heartbeat(gateway.clone(), shutdown.clone()));
    tokio::spawn(serve_router_asks(gateway.clone(), asks));

    let websocket = runtime::accept_loop(listener, MAX_HANDSHAKES, shutdown.clone(), {
        let gateway = gateway.clone();
        move |stream, peer| http::serve_connection(stream, peer, gateway.clone())
    });
    let tcp = async {
        if let Some(listener) = tcp_front {
            let gateway = gateway.clone();
            runtime::accept_loop(listener, MAX_HANDSHAKES, shutdown.clone(), move |stream, peer| {
                tcp::serve_connection(stream, peer, gateway.clone())
            })
            .await;
        }
    };
    tokio::join!(websocket, tcp);
    drain(&gateway).await;
    links_shutdown.trigger();
    admin_shutdown.trigger();
    Ok(())
}

/// Router requests waiting for the gateway (see [`RouterAsk`]).
const ROUTER_ASKS: usize = 1024;

async fn serve_router_asks(gateway: Arc<Gateway>, mut asks: tokio::sync::mpsc::Receiver<RouterAsk>) {
    while let Some(ask) = asks.recv().await {
        match ask {
            RouterAsk::Orphaned(ids) => {
                tracing::info!(sessions = ids.len(), "sending close events for a dead gateway's sessions");
                let gateway = gateway.clone();
                tokio::spawn(async move { send_close_events(&gateway, ids).await });
            }
            RouterAsk::Resume { link, session, to, ask } => {
                tokio::spawn(handover::give(gateway.clone(), link, session, to, ask));
            }
        }
    }
}

/// Close events of sessions no task here ends, sent at once at most.
const CLOSE_EVENTS_AT_ONCE: usize = 64;

/// Sends the close event, to this gateway's backend, for sessions no
/// session task here ends: a dead gateway's, or one that could not move.
/// The params are this gateway's static ones, SESSIONID and EVENT=2.
pub async fn send_close_events(gateway: &Gateway, ids: Vec<protocol::SessionId>) {
    use session::event::{Event, EventKind};
    if !gateway.config.close_event {
        return;
    }
    use futures_util::StreamExt;
    let send = |id: protocol::SessionId| async move {
        let event = Event { kind: EventKind::Close, body: bytes::Bytes::new() };
        let request = gateway.events.encode(&[], &id, &event);
        let pool = gateway.upstreams.default_pool();
        let _ = session::event::send(gateway, pool, EventKind::Close, &request, &id, &mut None).await;
    };
    futures_util::stream::iter(ids).for_each_concurrent(CLOSE_EVENTS_AT_ONCE, send).await;
}

/// Pings every client and closes the silent ones, on one timer for all.
async fn heartbeat(gateway: Arc<Gateway>, shutdown: Shutdown) {
    let every = std::time::Duration::from_millis(gateway.config.ping_interval_ms.max(1));
    let idle_timeout = std::time::Duration::from_millis(gateway.config.idle_timeout_ms);
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = ticks.tick() => gateway.registry.heartbeat(idle_timeout),
        }
    }
}

/// Closes every client and waits until each session has delivered its
/// close event (it leaves the registry only then), or the deadline passes.
async fn drain(gateway: &Gateway) {
    let timeout = std::time::Duration::from_millis(gateway.config.drain_timeout_ms);
    let deadline = tokio::time::Instant::now() + timeout;
    tracing::info!(sessions = gateway.registry.len(), "draining");
    while !gateway.registry.is_empty() && tokio::time::Instant::now() < deadline {
        // Again each round: a connection mid-upgrade may have registered since.
        gateway.registry.close_all(session::close::CloseReason::ShuttingDown);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    match gateway.registry.len() {
        0 => tracing::info!("drained"),
        left => tracing::warn!(left, "drain deadline of {timeout:?} passed with sessions still open"),
    }
}
