//! The raw TCP front: fooking's length-framed clients, over TCP or TLS.
//! The same sessions, events and params as WebSocket clients, less the
//! upgrade request's.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::front::admission::Admission;
use crate::front::transport::Tcp;
use crate::upstream::fastcgi::ParamBlock;
use crate::Gateway;

pub async fn serve_connection<S>(stream: S, remote: SocketAddr, gateway: Arc<Gateway>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // No close frames here: a refused client is simply disconnected.
    let Admission::Welcome(seat) = gateway.admit(remote.ip()) else { return };
    let mut params = ParamBlock::default();
    let address = [("REMOTE_ADDR", remote.ip().to_string()), ("REMOTE_PORT", remote.port().to_string())];
    for (name, value) in address {
        params.push(name.as_bytes(), value.as_bytes()).expect("an address fits a record");
    }
    let transport = Tcp::new(stream, gateway.config().max_message);
    let start = crate::session::task::Start::New { resumable: false };
    crate::session::task::run(gateway, transport, params.compact(), seat, start).await;
}
