//! The Redis connection every Redis user opens (the router's store,
//! chat-app's users and queue).

use std::time::Duration;

/// A Redis connection that reconnects by itself and never waits forever.
/// It connects lazily, so a process can start before Redis is up.
pub fn redis_manager(url: &str) -> Result<redis::aio::ConnectionManager, redis::RedisError> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    redis::Client::open(url)?.get_connection_manager_lazy(config)
}
