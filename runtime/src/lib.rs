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
mod wait;

use std::time::Duration;

pub use accept::{accept_loop, accept_loop_releasing, Slot, Slots};
pub use config::{args_with_config_file, args_with_config_file_from, config_tables, no_empty_secrets};
pub use logging::{init_tracing, LogFormat};
#[cfg(feature = "redis")]
pub use redis::Redis;
pub use shutdown::Shutdown;
#[cfg(feature = "jemalloc")]
pub use tikv_jemallocator;
pub use wait::until;

/// Makes jemalloc the binary's allocator: about 200 bytes less per idle
/// connection than glibc's malloc. Its background thread hands memory
/// freed after a burst (the buffers of thousands of handshakes) back to
/// the OS within about a second, instead of holding it as RSS.
#[cfg(feature = "jemalloc")]
#[macro_export]
macro_rules! use_jemalloc {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::tikv_jemallocator::Jemalloc = $crate::tikv_jemallocator::Jemalloc;

        /// jemalloc's options, read at its start (`_RJEM_MALLOC_CONF` in the
        /// environment still overrides them).
        #[allow(non_upper_case_globals)]
        #[export_name = "_rjem_malloc_conf"]
        static malloc_conf: &[u8; 43] = b"background_thread:true,dirty_decay_ms:1000\0";
    };
}

/// How long an HTTP request body may take to arrive (408 past it): a
/// client cannot hold a connection by sending slowly.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
