//! Where clients come in: the WebSocket front (`http`: the upgrade, plain
//! HTTP routes and pages; `websocket`: our codec; `tls`: wss://;
//! `exchange`: what it shares with SSE), the SSE
//! front for clients without WebSocket (`sse`, on the same listeners;
//! `sniff` finds a stream's first request before hyper) and the raw TCP
//! front (`tcp`, with fooking's length `framing`). Each makes its
//! connection a `base::transport::Transport` and starts a session on it,
//! once `crate::admission` lets the client in.

pub mod exchange;
pub mod framing;
pub mod http;
pub mod pusher;
pub mod sniff;
pub mod sse;
pub mod tcp;
pub mod tls;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use runtime::Slot;
use tokio::net::TcpStream;

use crate::session::Host;
use crate::Gateway;

/// What a listener serves.
#[derive(Clone)]
pub enum Listener {
    /// WebSocket upgrades and plain HTTP.
    WebSocket,
    /// fooking's length-framed clients.
    Tcp,
    /// Either, over TLS.
    Tls(tokio_rustls::TlsAcceptor, tls::Front),
}

/// An accepted connection: admitted by its peer's address before a byte
/// of it is read (an HTTP client refused gets a 429 while few others
/// linger, others are closed), then served by its listener's front.
/// `slot` is its handshake slot.
pub async fn serve_accepted(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Listener,
    slot: Slot,
    gateway: Arc<Gateway>,
) {
    let entry = match gateway.admission().at_accept(peer.ip(), gateway.metrics()) {
        Ok(entry) => entry,
        Err(refusal) => {
            tracing::debug!(%peer, ?refusal, "connection refused at accept");
            // Told why in a task of its own, outside the handshake slots,
            // so refusals cannot crowd out the connections let in.
            if let (Listener::WebSocket, Some(lingering)) = (listener, gateway.admission().linger()) {
                tokio::spawn(async move {
                    http::refuse(stream, refusal).await;
                    drop(lingering);
                });
            }
            return;
        }
    };
    if !matches!(listener, Listener::Tcp) {
        drop_unacknowledged_after(&stream, gateway.config().idle_timeout_ms);
    }
    match listener {
        Listener::WebSocket => http::serve_connection(stream, peer, entry, slot, gateway).await,
        Listener::Tcp => tcp::serve_connection(stream, peer, entry, gateway),
        Listener::Tls(acceptor, front) => {
            tls::serve_connection(stream, peer, entry, acceptor, front, slot, gateway).await
        }
    }
}

/// The kernel drops a connection whose written data stays unacknowledged
/// for the idle timeout (`TCP_USER_TIMEOUT`): an SSE client cannot answer
/// a ping, so this is how a vanished one is found, within a heartbeat and
/// the idle timeout, as a silent WebSocket client is.
fn drop_unacknowledged_after(stream: &TcpStream, idle_timeout_ms: u64) {
    let timeout = std::time::Duration::from_millis(idle_timeout_ms);
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
        tracing::debug!(%err, "TCP_USER_TIMEOUT not set");
    }
}
