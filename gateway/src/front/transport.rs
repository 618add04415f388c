//! What a session needs of its client connection, whatever carries it: a
//! stream of incoming frames and a sink of outgoing messages. WebSocket
//! and fooking's length-framed TCP both fit.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::Framed;

use crate::front::framing::{FramingError, LengthPrefixed};

pub enum Incoming {
    Message {
        body: Bytes,
        binary: bool,
    },
    /// Handled by the transport itself: pings and pongs.
    Control,
    /// The client's close frame, with its code if it gave one.
    Goodbye(Option<u16>),
    /// Over the size limit (close 1009).
    TooBig(String),
    /// The client broke the protocol (close 1002).
    Broken(String),
    /// The connection failed or was reset: nothing more can be sent.
    Failed(String),
}

/// A client connection as a session drives it. Outgoing messages are
/// tungstenite `Message`s: pushes are built once and shared by every
/// recipient, whatever carries them.
pub trait Transport: Stream<Item = Incoming> + Sink<Message, Error = io::Error> + Unpin + Send + 'static {}

impl<T> Transport for T where T: Stream<Item = Incoming> + Sink<Message, Error = io::Error> + Unpin + Send + 'static {}

pub struct WebSocket<S>(pub WebSocketStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        let next = ready!(Pin::new(&mut self.0).poll_next(cx));
        Poll::Ready(next.map(|frame| match frame {
            Ok(Message::Text(text)) => Incoming::Message { body: text.into(), binary: false },
            Ok(Message::Binary(data)) => Incoming::Message { body: data, binary: true },
            Ok(Message::Close(frame)) => Incoming::Goodbye(frame.map(|f| f.code.into())),
            Ok(_) => Incoming::Control,
            Err(WsError::Capacity(err)) => Incoming::TooBig(err.to_string()),
            Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                Incoming::Failed("reset without a closing handshake".into())
            }
            Err(WsError::Protocol(err)) => Incoming::Broken(err.to_string()),
            Err(err) => Incoming::Failed(err.to_string()),
        }))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_ready(cx).map_err(io::Error::other)
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> io::Result<()> {
        Pin::new(&mut self.0).start_send(message).map_err(io::Error::other)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(io::Error::other)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx).map_err(io::Error::other)
    }
}

/// fooking's raw TCP clients. Every message is binary; a close has no frame
/// of its own, so closing shuts the write side once pending data is out.
pub struct Tcp {
    framed: Framed<TcpStream, LengthPrefixed>,
    shut_down_after_flush: bool,
}

/// Read buffer to start with; it grows for large messages only.
const TCP_READ_BUFFER: usize = 256;

impl Tcp {
    pub fn new(stream: TcpStream, max_message: usize) -> Tcp {
        let framed = Framed::with_capacity(stream, LengthPrefixed::new(max_message), TCP_READ_BUFFER);
        Tcp { framed, shut_down_after_flush: false }
    }
}

impl Stream for Tcp {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        let next = ready!(Pin::new(&mut self.framed).poll_next(cx));
        Poll::Ready(next.map(|frame| match frame {
            Ok(body) => Incoming::Message { body, binary: true },
            Err(err @ FramingError::TooLarge { .. }) => Incoming::TooBig(err.to_string()),
            Err(err) => Incoming::Failed(err.to_string()),
        }))
    }
}

impl Sink<Message> for Tcp {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.framed).poll_ready(cx).map_err(io::Error::other)
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> io::Result<()> {
        let body = match message {
            Message::Text(text) => Bytes::from(text),
            Message::Binary(data) => data,
            Message::Close(_) => {
                self.shut_down_after_flush = true;
                return Ok(());
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(()),
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
