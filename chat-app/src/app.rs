//! The app's state, and where it comes from: the one place that builds
//! the stores and the router client from the flags. Nothing here is per
//! connection or per request.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use protocol::client::ClientError;
use protocol::RouterClient;

use crate::queue::{Queue, QueueStore};
use crate::users::Users;
use crate::Config;

/// What every request may use: handles to shared state.
pub struct App {
    pub users: Users,
    /// Who talks on binary frames (the talk protocol), by session.
    pub talkers: Users,
    pub queue: Queue,
    pub router: RouterClient,
}

impl App {
    pub fn new(config: &Config) -> anyhow::Result<App> {
        let redis = |url: &str| runtime::Redis::open(url).with_context(|| format!("bad redis url {url}"));
        let users = |name: &str| -> anyhow::Result<Users> {
            Ok(match &config.redis {
                Some(url) => {
                    let conn = redis(url)?;
                    Users::Redis { key: format!("{}{name}", conn.key_prefix(&config.redis_prefix)), conn }
                }
                None => Users::Memory(Mutex::new(HashMap::new())),
            })
        };
        let queue_store = match &config.redis {
            Some(url) => {
                let conn = redis(url)?;
                QueueStore::Redis { prefix: format!("{}queue:", conn.key_prefix(&config.redis_prefix)), conn }
            }
            None => QueueStore::Memory(Default::default()),
        };
        let queue = Queue::new(
            queue_store,
            config.queue_capacity,
            config.cookie_secret.as_deref(),
            config.operator_token.clone(),
        );
        let router = RouterClient::with_token(config.router.clone(), config.router_token.clone());
        Ok(App { users: users("users")?, talkers: users("talkers")?, queue, router })
    }
}

/// Why a request failed, as a code (HTTP-like) and a message; each
/// protocol tells its client in its own shape.
#[derive(Debug, PartialEq)]
pub struct AppError {
    pub code: u16,
    pub message: String,
}

impl AppError {
    pub fn new(code: u16, message: impl Into<String>) -> AppError {
        AppError { code, message: message.into() }
    }
}

impl From<ClientError> for AppError {
    fn from(err: ClientError) -> Self {
        tracing::error!(%err, "router call failed");
        AppError::new(503, "router unavailable")
    }
}

impl From<redis::RedisError> for AppError {
    fn from(err: redis::RedisError) -> Self {
        tracing::error!(%err, "user store failed");
        AppError::new(503, "user store unavailable")
    }
}
