//! The raw TCP front: fooking's length-framed clients, over TCP or TLS.
//! The same sessions, events and params as WebSocket clients, less the
//! upgrade request's.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::front::admission::Entry;
use crate::front::transport::Tcp;
use crate::upstream::cgi;
use crate::upstream::fastcgi::ParamBlock;
use crate::Gateway;

/// Starts the session of a client admitted at accept as `entry`, in a task
/// of its own: a session holds a place under `--max-connections`, not one
/// of the handshake slots.
pub fn serve_connection<S>(stream: S, remote: SocketAddr, entry: Entry, gateway: Arc<Gateway>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // No close frames here: a refused client is simply disconnected.
    let Ok(seat) = gateway.admission().admit(&entry, remote.ip(), gateway.metrics()) else { return };
    let mut params = ParamBlock::default();
    cgi::client_address(&mut params, remote).expect("an address fits a record");
    let transport = Tcp::new(stream, gateway.config().max_message);
    let start = crate::session::task::Start::New { resumable: false };
    tokio::spawn(crate::session::task::run(gateway, transport, params.compact(), seat, start));
}
