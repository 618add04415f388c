//! The gateway: holds client connections and turns each connect, message
//! and close into a FastCGI request; delivers replies and router pushes.
//!
//! A connection goes through named phases, each a folder:
//! - `front`: where a client comes in (WebSocket upgrade or raw TCP), and
//!   whether it may (admission);
//! - `session`: one task per client, its I/O apart from its `policy`;
//! - `upstream`: where its events go (FastCGI pools, routing by key);
//! - `resume`: a dropped client coming back to its session, here or on
//!   another gateway;
//! - `links`: the links to the routers, for pushes and session reports;
//! - `base`: the ground floor, what every phase shares (why a client is closed).

pub mod base;
pub mod config;
pub mod front;
pub mod links;
pub mod metrics;
pub mod resume;
pub mod session;
pub mod upstream;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use anyhow::Context;
use runtime::Shutdown;
use tokio::net::TcpListener;

pub use config::Config;
use front::admission::AdmissionControl;
use links::{RouterAsk, RouterLinks};
use metrics::Metrics;
use protocol::handover::GatewayId;
use resume::token::TokenKey;
use session::{Registry, SessionSettings};
use upstream::cgi::{Event, EventEncoder};
use upstream::fastcgi::{Pool, Upstreams};
use upstream::routing::Routes;

/// The gateway's shared state, one handle for every phase; each part is
/// reached through a method that says what it is for.
pub struct Gateway {
    config: Config,
    session: SessionSettings,
    upstreams: Upstreams,
    routes: Routes,
    metrics: Metrics,
    admission: AdmissionControl,
    registry: Arc<Registry>,
    links: RouterLinks,
    events: EventEncoder,
    resume_keys: TokenKey,
    pages: Vec<Page>,
    /// Connections not yet sessions, under `--max-handshakes`.
    handshakes: runtime::Slots,
}

/// A file served on GET (`--page`), read at start.
pub struct Page {
    path: String,
    pub content_type: &'static str,
    pub body: bytes::Bytes,
}

impl Page {
    fn load(path: &str, file: &std::path::Path) -> anyhow::Result<Page> {
        let body = std::fs::read(file).with_context(|| format!("--page {path}={}", file.display()))?;
        let content_type = match file.extension().and_then(|e| e.to_str()) {
            Some("html" | "htm") => "text/html; charset=utf-8",
            Some("js" | "mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("json") => "application/json",
            Some("txt") => "text/plain; charset=utf-8",
            _ => "application/octet-stream",
        };
        Ok(Page { path: path.to_owned(), content_type, body: body.into() })
    }
}

impl Gateway {
    /// The flags, as given.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What every session follows.
    pub fn session_settings(&self) -> &SessionSettings {
        &self.session
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every live session, by id.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn links(&self) -> &RouterLinks {
        &self.links
    }

    /// Builds each event's FastCGI request.
    pub fn events(&self) -> &EventEncoder {
        &self.events
    }

    pub fn resume_keys(&self) -> &TokenKey {
        &self.resume_keys
    }

    /// Who may connect (see [`front::admission`]).
    pub fn admission(&self) -> &AdmissionControl {
        &self.admission
    }

    /// Connections in their handshake now.
    pub fn handshakes(&self) -> usize {
        self.handshakes.in_use()
    }

    /// The pool an event goes to, by the routes.
    pub fn pool_for(&self, event: &Event) -> &Pool {
        self.routes.pool_for(&self.upstreams, event)
    }

    /// A pool by name (plain HTTP routes), the default one, or all.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.upstreams.pool(name)
    }

    pub fn default_pool(&self) -> &Pool {
        self.upstreams.default_pool()
    }

    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// What it holds now, for the metrics.
    fn gauges(&self) -> metrics::Gauges<'_> {
        let (links, stats) = (self.links().health(), &self.links().stats);
        let budget = self.session_settings().resume_budget();
        metrics::Gauges {
            sessions: self.registry.len() as f64,
            handshakes: self.handshakes() as f64,
            backend_inflight_bytes: self.upstreams.in_flight_bytes() as f64,
            links_up: links.up as f64,
            link_queued_events: links.queued as f64,
            unreported_closes: links.unreported as f64,
            silent_routers: stats.silent_routers.load(Relaxed),
            link_overflows: stats.overflows.load(Relaxed),
            closes_lost: stats.closes_lost.load(Relaxed),
            pushes_queued: stats.pushes_queued.load(Relaxed),
            offline: self.registry.parked() as f64,
            resume_buffered_bytes: budget.used() as f64,
            resume_budget_dropped: budget.dropped(),
            outbound_queued_bytes: self.registry.queued_bytes() as f64,
            upstreams: &self.upstreams,
        }
    }

    /// The page served on GET `path`, if one was given.
    pub fn page(&self, path: &str) -> Option<&Page> {
        self.pages.iter().find(|page| page.path == path)
    }
}

/// Binds the listeners, serves until `shutdown` is cancelled, then drains:
/// every client is closed (1001) and its close event delivered, within
/// the drain timeout.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    if config.routers.len() > session::mailbox::MAX_ROUTERS {
        anyhow::bail!("at most {} --router (a session's mailbox has a bit per router)", session::mailbox::MAX_ROUTERS);
    }
    runtime::no_empty_secrets(&[("--router-token", &config.router_token), ("--resume-secret", &config.resume_secret)])?;
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("bind {}", config.listen))?;
    let tcp_front = match config.listen_tcp {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("bind {addr}"))?),
        None => None,
    };
    let (certificate, tls_fronts) = front::tls::bind(&config).await?;
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
        links::LinkSettings::from_config(&config),
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
    let backends: Vec<String> = config.backends.iter().map(|b| format!("{}={}", b.pool, b.addr)).collect();
    tracing::info!(listen = %config.listen, listen_tcp = ?config.listen_tcp, listen_tls = ?config.listen_tls, listen_tcp_tls = ?config.listen_tcp_tls, ?backends, routers = ?config.routers, admin = ?config.admin, "gateway ready");
    let gateway = Arc::new(Gateway {
        resume_keys: TokenKey::new(config.resume_secret.as_deref()),
        events: EventEncoder::new(
            upstream::cgi::static_params(config.params.iter().map(|(n, v)| (n.as_str(), v.as_str())))?,
            &config.param_prefix,
        ),
        admission: AdmissionControl::new(&config),
        pages: config.pages.iter().map(|(path, file)| Page::load(path, file)).collect::<anyhow::Result<_>>()?,
        handshakes: runtime::Slots::new(config.max_handshakes),
        session: SessionSettings::new(&config),
        config,
        upstreams,
        routes,
        metrics: Metrics::default(),
        registry,
        links,
    });
    let admin_shutdown = Shutdown::new();
    if let Some(addr) = gateway.config.admin {
        let gateway = gateway.clone();
        let serve = runtime::metrics::serve_admin(addr, admin_shutdown.clone(), move || {
            gateway.metrics.render(gateway.gauges())
        });
        tokio::spawn(async move {
            if let Err(err) = serve.await {
                tracing::error!(%err, "admin listener failed");
            }
        });
    }
    tokio::spawn(heartbeat(gateway.clone(), shutdown.clone()));
    tokio::spawn(serve_router_asks(gateway.clone(), asks));

    let serve_on = |listener: TcpListener, front: front::Listener| {
        let gateway = gateway.clone();
        runtime::accept_loop(listener, gateway.handshakes.clone(), shutdown.clone(), move |stream, peer| {
            front::serve_accepted(stream, peer, front.clone(), gateway.clone())
        })
    };
    let websocket = serve_on(listener, front::Listener::WebSocket);
    let tcp = async {
        if let Some(listener) = tcp_front {
            serve_on(listener, front::Listener::Tcp).await;
        }
    };
    if let Some(certificate) = certificate {
        tokio::spawn(front::tls::reload_on_hangup(certificate, gateway.clone()));
    }
    let tls = futures_util::future::join_all(
        tls_fronts.into_iter().map(|tls| serve_on(tls.socket, front::Listener::Tls(tls.acceptor, tls.front))),
    );
    tokio::join!(websocket, tcp, tls);
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
                tokio::spawn(async move { session::event::send_close_events(&gateway, ids).await });
            }
            RouterAsk::Resume { link, session, to, ask } => {
                tokio::spawn(resume::handover::give(gateway.clone(), link, session, to, ask));
            }
        }
    }
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
    // Those that register from now on (mid-upgrade) are closed as they do.
    gateway.registry.close_all(base::close::CloseReason::ShuttingDown);
    gateway.registry.until_empty(deadline).await;
    match gateway.registry.len() {
        0 => tracing::info!("drained"),
        left => tracing::warn!(left, "drain deadline of {timeout:?} passed with sessions still open"),
    }
}
