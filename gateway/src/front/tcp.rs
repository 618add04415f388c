//! The raw TCP front: fooking's length-framed clients, over TCP or TLS.
//! The same sessions, events and params as WebSocket clients, less the
//! upgrade request's.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::admission::Entry;
use crate::base::message::Message;
use crate::base::transport::{Incoming, Violation};
use crate::front::framing::{FramingError, LengthPrefixed};
use crate::session::Host;
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
    let start = crate::session::task::Start::New { id: protocol::SessionId::random(), resumable: false, pusher: None };
    tokio::spawn(crate::session::task::run(gateway, transport, params.compact(), seat, start));
}

/// fooking's raw TCP clients, over TCP or TLS. Every message is binary; a
/// close has no frame of its own, so closing shuts the write side once
/// pending data is out.
pub struct Tcp<S> {
    framed: Framed<S, LengthPrefixed>,
    shut_down_after_flush: bool,
}

/// Read buffer to start with; it grows for large messages only.
const TCP_READ_BUFFER: usize = 256;

impl<S: AsyncRead + AsyncWrite + Unpin> Tcp<S> {
    pub fn new(stream: S, max_message: usize) -> Tcp<S> {
        let framed = Framed::with_capacity(stream, LengthPrefixed::new(max_message), TCP_READ_BUFFER);
        Tcp { framed, shut_down_after_flush: false }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for Tcp<S> {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        let next = ready!(Pin::new(&mut self.framed).poll_next(cx));
        Poll::Ready(next.map(|frame| match frame {
            Ok(body) => Incoming::Message { body, binary: true },
            Err(err @ FramingError::TooLarge { .. }) => Incoming::Violation(Violation::TooBig(err.to_string())),
            Err(err) => Incoming::Failed(err.to_string()),
        }))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for Tcp<S> {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.framed).poll_ready(cx).map_err(io::Error::other)
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> io::Result<()> {
        let body = match message {
            Message::Text(payload) | Message::Binary(payload) => payload.data().clone(),
            Message::Session(greeting) => greeting.json().to_string().into(),
            Message::Close { .. } => {
                self.shut_down_after_flush = true;
                return Ok(());
            }
            Message::Ping | Message::Accepted => return Ok(()),
        };
        Pin::new(&mut self.framed).start_send(body).map_err(io::Error::other)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.framed).poll_flush(cx)).map_err(io::Error::other)?;
        if self.shut_down_after_flush {
            ready!(Pin::new(self.framed.get_mut()).poll_shutdown(cx))?;
            self.shut_down_after_flush = false;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.framed).poll_close(cx).map_err(io::Error::other)
    }
}
