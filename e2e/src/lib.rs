//! Harness for the end-to-end tests: starts the project's real binaries
//! (and a real Redis) as separate processes on free ports, and talks to
//! them over real sockets as a client, a backend or curl would.

pub mod browser;
pub mod chat;
pub mod fooking;
pub mod http;
pub mod processes;
pub mod queue;
pub mod raw_ws;
pub mod sse;
pub mod ws;

pub use processes::{
    backend_events, cluster, echo_backend, echo_backend_with, echo_stack, eventually, free_port, metric, scratch_file,
    ClusterGateway, Proc, Redis, RedisCluster, SentinelGroup, Stack, StackOptions,
};
pub use sse::SseClient;
pub use ws::Client;
