//! Running a gateway: its listeners, the router links' asks, the heartbeat,
//! and the drain at shutdown.

use std::sync::Arc;

use anyhow::Context;
use runtime::Shutdown;
use tokio::net::TcpListener;

use crate::links::{self, RouterAsk, RouterLinks};
use crate::session::{self, Host, Registry};
use crate::{base, front, handover, Config, Gateway};
use protocol::handover::GatewayId;

/// Binds the listeners, serves until `shutdown` is cancelled, then drains:
/// every client is closed (1001) and its close event delivered, within
/// the drain timeout.
pub async fn run(config: Config, outer: Shutdown) -> anyhow::Result<()> {
    // This gateway's own: the process's, or a router's DRAIN (which must
    // not stop what else runs in the process, as in the demo).
    let shutdown = Shutdown::new();
    let own = shutdown.clone();
    tokio::spawn(async move {
        outer.wait().await;
        own.trigger();
    });
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
        links::RouterLinkSettings::from_config(&config),
        registry.clone(),
        identity,
        asks_tx,
        links_shutdown.clone(),
    );
    if config.resume_secret.is_none() && !config.routers.is_empty() && config.resume_grace_ms > 0 {
        tracing::warn!("no --resume-secret: sessions resume on this gateway only, not on others of the cluster");
    }
    let backends: Vec<String> = config.backends.iter().map(|b| format!("{}={}", b.pool, b.addr)).collect();
    tracing::info!(listen = %config.listen, listen_tcp = ?config.listen_tcp, listen_tls = ?config.listen_tls, listen_tcp_tls = ?config.listen_tcp_tls, ?backends, routers = ?config.routers, admin = ?config.admin, "gateway ready");
    let gateway = Arc::new(Gateway::new(config, registry, links)?);
    let admin_shutdown = Shutdown::new();
    if let Some(addr) = gateway.config().admin {
        let gateway = gateway.clone();
        let serve = runtime::metrics::serve_admin(addr, admin_shutdown.clone(), move || gateway.render_metrics());
        tokio::spawn(async move {
            if let Err(err) = serve.await {
                tracing::error!(%err, "admin listener failed");
            }
        });
    }
    tokio::spawn(heartbeat(gateway.clone(), shutdown.clone()));
    tokio::spawn(report_status(gateway.clone(), links_shutdown.clone()));
    tokio::spawn(serve_router_asks(gateway.clone(), asks, shutdown.clone()));
    let orphans = gateway.clone();
    tokio::spawn(async move { orphans.orphans().send(&*orphans).await });

    let serve_on = |listener: TcpListener, front: front::Listener| {
        let gateway = gateway.clone();
        let slots = gateway.handshake_slots().clone();
        runtime::accept_loop_releasing(listener, slots, shutdown.clone(), move |stream, peer, slot| {
            front::serve_accepted(stream, peer, front.clone(), slot, gateway.clone())
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

async fn serve_router_asks(gateway: Arc<Gateway>, mut asks: tokio::sync::mpsc::Receiver<RouterAsk>, drain: Shutdown) {
    while let Some(ask) = asks.recv().await {
        match ask {
            RouterAsk::Orphaned(ids) => {
                let dropped = gateway.orphans().push(ids);
                if dropped > 0 {
                    gateway.metrics().add(crate::metrics::Count::OrphanClosesDropped, dropped);
                    tracing::warn!(
                        dropped,
                        "a dead gateway's sessions past the queue's bound: no close event for them"
                    );
                }
            }
            RouterAsk::Drain => drain.trigger(),
            RouterAsk::Occupancy(occupancy) => {
                let gateway = gateway.clone();
                tokio::spawn(async move { session::event::send_occupancy(&*gateway, occupancy).await });
            }
            RouterAsk::Resume { link, session, to, ask } => {
                tokio::spawn(handover::give(gateway.clone(), link, session, to, ask));
            }
        }
    }
}

/// Tells every router how this gateway is, every link heartbeat interval,
/// for the operator's page; until the links stop, so a drain shows.
async fn report_status(gateway: Arc<Gateway>, shutdown: Shutdown) {
    let mut ticks = tokio::time::interval(gateway.links().settings().heartbeat);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = ticks.tick() => gateway.links().send_to_all(gateway.status().to_frame()),
        }
    }
}

/// Pings every client and closes the silent ones, on one timer for all.
async fn heartbeat(gateway: Arc<Gateway>, shutdown: Shutdown) {
    let every = std::time::Duration::from_millis(gateway.config().ping_interval_ms.max(1));
    let idle_timeout = std::time::Duration::from_millis(gateway.config().idle_timeout_ms);
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = ticks.tick() => gateway.registry().heartbeat(idle_timeout),
        }
    }
}

/// Closes every client and waits until each session has delivered its
/// close event (it leaves the registry only then), or the deadline passes.
async fn drain(gateway: &Gateway) {
    let timeout = std::time::Duration::from_millis(gateway.config().drain_timeout_ms);
    let deadline = tokio::time::Instant::now() + timeout;
    tracing::info!(sessions = gateway.registry().len(), "draining");
    // Those that register from now on (mid-upgrade) are closed as they do.
    gateway.registry().close_all(base::close::CloseReason::ShuttingDown);
    gateway.registry().until_empty(deadline).await;
    match gateway.registry().len() {
        0 => tracing::info!("drained"),
        left => tracing::warn!(left, "drain deadline of {timeout:?} passed with sessions still open"),
    }
}
