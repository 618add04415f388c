//! Where clients come in: the WebSocket front (`http`: upgrade, admission,
//! plain HTTP routes and pages) and the raw TCP front (`tcp`, with fooking's
//! length `framing`); `transport` makes both look alike to a session;
//! `admission` decides who may connect (per-address limits, the client's
//! address behind a trusted proxy, the connection limit).

pub mod admission;
pub mod framing;
pub mod http;
pub mod limits;
pub mod proxy;
pub mod tcp;
pub mod transport;
