//! The router: backends command it (fooking's binary protocol or JSON over
//! HTTP) and it pushes to the gateways that hold the sessions.

pub mod admin;
pub mod cmd;
pub mod config;
pub mod hub;
pub mod link;
pub mod metrics;
pub mod outbound;
pub mod presence;
pub mod pusher;
pub mod seams;
pub mod server;
pub mod store;
pub mod webhooks;

use std::sync::Arc;

use anyhow::Context;
use runtime::Shutdown;
use tokio::net::TcpListener;

pub use config::Config;
use hub::Hub;
use server::arrival::ArrivalOrder;
use store::{RedisStore, Store};

/// Binds both listeners, then serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let store = match &config.redis {
        Some(url) => {
            let conn = runtime::Redis::open(url).with_context(|| format!("bad redis url {url}"))?;
            Store::Redis(RedisStore::new(conn, &config.redis_prefix))
        }
        None => Store::Memory(Box::default()),
    };
    config.check()?;
    let hub = Hub::new(store, config.max_frame, config.history_rules()?, config.route_bounds());
    let webhooks = webhooks::Webhooks::start(&config.pusher_apps()?, &config.pusher_webhooks, hub.metrics.clone())?;
    let hub = Arc::new(hub.with_webhooks(webhooks));
    let token: Option<Arc<str>> = config.token.as_deref().map(Arc::from);
    let credentials =
        server::binary::Credentials { backend: token.clone(), gateway: config.gateway_token.as_deref().map(Arc::from) };
    let binary = TcpListener::bind(config.listen).await.with_context(|| format!("bind {}", config.listen))?;
    let http = TcpListener::bind(config.http).await.with_context(|| format!("bind {}", config.http))?;
    tracing::info!(listen = %config.listen, http = %config.http, redis = config.redis.as_deref().unwrap_or("-"), "router ready");

    let settings = config.link_settings();
    let binary_hub = hub.clone();
    let arrival = Arc::new(ArrivalOrder::default());
    // Each listener serves up to --max-connections at once.
    let slots = || runtime::Slots::new(config.max_connections);
    let binary_loop = runtime::accept_loop(binary, slots(), shutdown.clone(), move |stream, _| {
        server::binary::serve_connection(stream, binary_hub.clone(), settings, credentials.clone(), arrival.ticket())
    });
    let watched_hub = hub.clone();
    let admin = admin::Admin {
        access: config.admin_access(),
        heartbeat: settings.heartbeat,
        store: if config.redis.is_some() { "redis" } else { "memory" },
        started: std::time::Instant::now(),
    };
    let doors =
        Arc::new(server::http::Doors { token, pusher_apps: config.pusher_apps()?, hosts: config.http_hosts(), admin });
    tokio::spawn(admin::sample(hub.clone(), shutdown.clone()));
    let http_loop = runtime::accept_loop(http, slots(), shutdown.clone(), move |stream, _| {
        server::http::serve_connection(stream, hub.clone(), doors.clone())
    });
    let lease = std::time::Duration::from_millis(config.gateway_lease_ms);
    let me = Me { name: router_name(config.listen), http: config.http.to_string(), started: hub::watch::unix_now() };
    tokio::join!(binary_loop, http_loop, watch_store(watched_hub, lease, me, shutdown.clone()));
    Ok(())
}

/// How often the router checks whether Redis lost its data.
const STORE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// This router, as it names itself to the others in the store.
struct Me {
    name: String,
    http: String,
    started: u64,
}

/// The host's name and the binary port: unique among routers that share a store.
fn router_name(listen: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!("{}:{}", if host.is_empty() { "router" } else { host }, listen.port())
}

/// Keeps the shared state honest, once a second:
/// - tells the other routers on the store that this one is alive (for
///   the operator's page);
/// - renews the leases of the gateways linked here;
/// - ends the sessions of a gateway whose lease ran out (it died without a
///   word): they leave every channel and user, and a live gateway sends
///   their close events to the backend;
/// - forgets the joins and binds of sessions that no gateway reported
///   within the lease (joined after they closed, or never existed);
/// - when the store lost what it had confirmed (Redis restarted without
///   its data, a replica promoted without the last writes, by the
///   Sentinels or a Cluster), asks every gateway to report again
///   ([`store::resync_reason`]).
async fn watch_store(hub: Arc<Hub>, lease: std::time::Duration, me: Me, shutdown: Shutdown) {
    // An empty store at this router's first look is a new one, not a loss.
    let mut first_look = true;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(STORE_CHECK_EVERY.min(lease / 3)) => {}
        }
        let store = hub.store();
        // A sweep reads every shard: only where history is kept.
        if hub.keeps_history() {
            if let Ok(kept) = store.history_sweep().await {
                hub.metrics.set_history_bytes(kept);
            }
        }
        let renewed = store.renew_leases(&hub.linked_gateway_keys(), lease).await;
        hub.note_store(renewed.is_ok());
        if let Ok(routers) = store.routers(&me.name, &hub.router_report(&me.http, me.started)).await {
            hub.note_routers(routers);
        }
        if let Err(err) = renewed {
            tracing::warn!(%err, "could not renew gateway leases");
            continue;
        }
        let unheld = hub.sweep_unheld(lease, std::time::Instant::now());
        if !unheld.is_empty() {
            tracing::info!(sessions = unheld.len(), "forgetting joins of sessions no gateway holds");
            match presence::forget(&hub, &unheld, None).await {
                Ok(()) => hub.metrics.add(crate::metrics::Count::UnheldSwept, unheld.len()),
                Err(err) => tracing::warn!(%err, "could not forget sessions no gateway holds"),
            }
        }
        while let Ok(Some((gateway, ids))) = store.reap_dead_gateway().await {
            tracing::warn!(gateway, sessions = ids.len(), "gateway lease expired: ending its sessions");
            if let Err(err) = presence::forget(&hub, &ids, None).await {
                tracing::error!(%err, gateway, "could not drop the dead gateway's sessions");
            }
            if !hub.hand_over_orphans(&ids) {
                tracing::error!(gateway, sessions = ids.len(), "no live gateway to send the close events");
            }
        }
        match store.look().await.map(|look| store::resync_reason(look, first_look)) {
            Ok(Some(why)) => {
                match first_look {
                    true => tracing::info!("{why}: asking the gateways to report"),
                    false => tracing::warn!("{why}: asking the gateways to resync"),
                }
                hub.request_resync();
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(%err, "could not look at the store"),
        }
        first_look = false;
    }
}
