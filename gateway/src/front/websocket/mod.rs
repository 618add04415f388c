//! Our own WebSocket codec (RFC 6455, with permessage-deflate of RFC 7692),
//! written for what a gateway holds most: idle connections. Nothing is
//! buffered between messages, and a broadcast is compressed once.
//! - `frame`: one frame's wire format;
//! - `decoder`: bytes in, whole messages out (no I/O);
//! - `deflate`: compression, negotiated per connection, without context;
//! - `handshake`: the accept key;
//! - `outgoing`: a message's frame, made once for every recipient of a
//!   shared payload;
//! - `connection`: all of it on a socket, as a session's transport.

pub mod connection;
pub mod decoder;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod outgoing;
pub mod write_queue;

pub use connection::{Compressing, Settings, WebSocket};
