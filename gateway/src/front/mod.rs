//! Where clients come in: the WebSocket front (`http`: upgrade, admission,
//! plain HTTP routes and pages; `websocket`: our codec; `tls`: wss://) and the raw TCP
//! front (`tcp`, with fooking's length `framing`); `transport` makes both
//! look alike to a session, which sends them `message`s; `admission`
//! decides who may connect (per-address limits, the client's address
//! behind a trusted proxy, the connection limit).

pub mod admission;
pub mod framing;
pub mod http;
pub mod limits;
pub mod message;
pub mod proxy;
pub mod tcp;
pub mod tls;
pub mod transport;
pub mod websocket;
