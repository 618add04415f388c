//! What a session needs of its client connection, whatever carries it: a
//! stream of incoming frames and a sink of outgoing messages. WebSocket
//! and fooking's length-framed TCP both fit.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::front::framing::{FramingError, LengthPrefixed};
use crate::front::message::Message;

pub enum Incoming {
    Message {
        body: Bytes,
        binary: bool,
    },
    /// Handled by the transport itself: pings and pongs.
    Control,
    /// The client's close frame, with its code if it gave one.
    Goodbye(Option<u16>),
    /// The client sent what it may not: nothing more is read.
    Violation(Violation),
    /// The connection failed or was reset: nothing more can be sent.
    Failed(String),
}

/// What a client sent that it may not, by the close code it earns.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// Over the size limit (1009).
    #[error("{0}")]
    TooBig(String),
    /// Against the protocol (1002).
    #[error("{0}")]
    Protocol(String),
    /// Text that is not UTF-8, or data that does not inflate (1007).
    #[error("{0}")]
    InvalidPayload(String),
}

/// A client connection as a session drives it: incoming frames, outgoing
/// [`Message`]s (pushes are built once and shared by every recipient,
/// whatever carries them).
pub trait Transport: Stream<Item = Incoming> + Sink<Message, Error = io::Error> + Unpin + Send + 'static {}

impl<T> Transport for T where T: Stream<Item = Incoming> + Sink<Message, Error = io::Error> + Unpin + Send + 'static {}

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
            Message::Close { .. } => {
                self.shut_down_after_flush = true;
                return Ok(());
            }
            Message::Ping => return Ok(()),
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
