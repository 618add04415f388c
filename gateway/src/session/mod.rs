//! Client sessions: `registry` finds a live session by id (for pushes),
//! `outbox` queues its pushes, `transport` hides WebSocket or raw TCP,
//! `event` turns a session's events into FastCGI requests, `connection`
//! drives one client from connect to close, `resume` signs the tokens that
//! bring a dropped client back to its session.

pub mod close;
pub mod connection;
pub mod event;
pub mod outbox;
pub mod registry;
pub mod resume;
pub mod transport;

pub use registry::Registry;
