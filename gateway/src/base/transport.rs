//! What a session needs of its client connection, whatever carries it: a
//! stream of incoming frames and a sink of outgoing messages. WebSocket
//! and fooking's length-framed TCP both fit (see `front`).

use std::io;

use bytes::Bytes;
use futures_util::{Sink, Stream};

use super::message::Message;

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
    /// A compressed message that would inflate past its budget (1008).
    #[error("{0}")]
    InflateBudget(String),
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
