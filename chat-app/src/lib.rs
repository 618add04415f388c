//! The chat app: a stateless FastCGI backend on tokio-fastcgi. Every
//! request names its session; whatever must outlive a request lives in the
//! user store or the router.
//!
//! `app` builds the state from the flags (the one composition root),
//! `dispatch` hands each request to its protocol: `chat` (JSON), `talk`
//! (protobuf on binary frames) or `queue` (the game-login line); `cgi` is
//! the one response they all answer with.

pub mod app;
pub mod cgi;
pub mod chat;
pub mod config;
mod dispatch;
pub mod queue;
pub mod request;
pub mod talk;
pub mod text;
pub mod users;

use std::sync::Arc;

use anyhow::Context;
use runtime::Shutdown;
use tokio::net::TcpListener;

use app::App;
pub use config::Config;

/// FastCGI connections served at once (each runs one request at a time).
const MAX_CONNECTIONS: usize = 4096;

pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    runtime::no_empty_secrets(&[
        ("--router-token", &config.router_token),
        ("--cookie-secret", &config.cookie_secret),
        ("--operator-token", &config.operator_token),
    ])?;
    let app = Arc::new(App::new(&config)?);
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("bind {}", config.listen))?;
    tracing::info!(listen = %config.listen, router = %config.router, "chat-app ready");
    let serve = move |stream, _| dispatch::serve_connection(stream, app.clone());
    runtime::accept_loop(listener, runtime::Slots::new(MAX_CONNECTIONS), shutdown, serve).await;
    Ok(())
}
