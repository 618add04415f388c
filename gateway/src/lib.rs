//! The gateway: holds client connections and turns each connect, message
//! and close into a FastCGI request; delivers replies and router pushes.
//!
//! The layers, from the ground up (docs/ARCHITECTURE.md; each imports
//! only those below it):
//! - `base`: what every layer shares (a message, why a client is closed,
//!   what a session needs of its connection);
//! - `upstream`: what a backend sees (CGI params) and the FastCGI pools;
//! - `config` and `metrics`;
//! - `admission`: who may connect, and from which address;
//! - `resume`: tokens, replay logs and their budget;
//! - `session`: one task per client, its mailbox, the registry and channel
//!   memberships, seeing the gateway only as a `session::Host`;
//! - `links`: the links to the routers, for pushes and session reports;
//! - `state`: the `Gateway` handle;
//! - `handover`: a session moving to a new connection, here or from
//!   another gateway;
//! - `front`: where a client comes in (WebSocket upgrade, raw TCP, TLS,
//!   pages and plain HTTP routes);
//! - `serve`: listeners, heartbeat and drain.

pub mod admission;
pub mod base;
pub mod config;
pub mod front;
pub mod handover;
pub mod links;
pub mod metrics;
pub mod resume;
pub mod serve;
pub mod session;
pub mod state;
pub mod upstream;

pub use config::Config;
pub use serve::run;
pub use state::Gateway;
