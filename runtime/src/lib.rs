//! What every binary of the project shares: logging, the shutdown, the
//! bounded accept loop, config files and secret checks, rate limits, the
//! metrics exposition (and, with `admin`, the listener that serves it),
//! and, with `redis`, the Redis connection every Redis user opens.

mod accept;
pub mod config;
mod logging;
pub mod metrics;
pub mod rate;
#[cfg(feature = "redis")]
mod redis;
mod shutdown;

use std::time::Duration;

pub use accept::accept_loop;
pub use config::{args_with_config_file, no_empty_secrets};
pub use logging::init_tracing;
#[cfg(feature = "redis")]
pub use redis::redis_manager;
pub use shutdown::Shutdown;

/// How long an HTTP request body may take to arrive (408 past it): a
/// client cannot hold a connection by sending slowly.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
