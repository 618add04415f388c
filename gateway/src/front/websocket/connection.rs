//! A WebSocket connection on its socket (plain TCP or TLS), after the
//! upgrade: frames read through the [`Decoder`], pings and the close
//! handshake answered, messages written. An idle connection holds no
//! buffer: reads go through one on the stack, and the write buffer lives
//! only while a write is under way.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::decoder::{clock_ms, Decoded, Decoder, InflateBudget, InflateLimits};
use super::frame::{close_payload, server_frame, OpCode};
use super::write_queue::WriteQueue;
use crate::base::message::{Message, Payload};
use crate::base::transport::{Incoming, Violation};
use crate::front::websocket::outgoing::{websocket_frame, Frame};

/// Bytes read per call, into a buffer on the stack.
const READ_CHUNK: usize = 8 * 1024;
/// Queued output past which a writer waits for the socket, and a client
/// that does not read what it is sent is no longer read (a client that
/// only pings holds one pong: see [`WriteQueue::push_pong`]).
const OUT_HIGH_WATER: usize = 64 * 1024;

/// What a connection may do, settled by the upgrade.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub max_message: usize,
    /// permessage-deflate was agreed: messages may come compressed, and
    /// inflate within these limits.
    pub inflate: Option<InflateLimits>,
    /// How messages go out compressed; `None`: none do.
    pub compress: Option<Compressing>,
}

#[derive(Clone, Copy, Debug)]
pub struct Compressing {
    /// Shorter messages go out as they are.
    pub min_bytes: u32,
    /// The window the client allows us.
    pub window_bits: u8,
}

pub struct WebSocket<S> {
    io: S,
    decoder: Decoder,
    /// Read from the socket, not decoded yet (boxed: most reads are
    /// decoded whole).
    unread: Option<Box<Bytes>>,
    /// Encoded, not written yet.
    out: WriteQueue,
    compress: Option<Compressing>,
    close_sent: bool,
    close_received: bool,
    /// Nothing more is read: the stream ended or broke the protocol.
    reading_done: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// `unread`: what the upgrade read past the request, the first frames'.
    /// It is copied out, since it shares the whole of the upgrade's read
    /// buffer, even when empty.
    pub fn new(io: S, unread: Bytes, settings: Settings) -> WebSocket<S> {
        WebSocket {
            io,
            decoder: Decoder::new(
                settings.max_message,
                settings.inflate.map(|limits| InflateBudget::new(limits, settings.max_message, clock_ms())),
            ),
            unread: (!unread.is_empty()).then(|| Box::new(Bytes::copy_from_slice(&unread))),
            out: WriteQueue::default(),
            compress: settings.compress,
            close_sent: false,
            close_received: false,
            reading_done: false,
        }
    }

    fn encode(&mut self, opcode: OpCode, payload: &[u8]) {
        self.out.push(Frame::Own(server_frame(opcode, false, payload)));
    }

    /// Writes what is queued; once all is out, the queue goes too.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.out.poll_write_to(&mut self.io, cx)
    }

    /// Starts writing the answer to a ping or a close, if there is one; a
    /// write error shows at the next read.
    fn answered(&mut self, incoming: Incoming, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        if !self.out.is_empty() {
            let _ = self.poll_write_out(cx);
        }
        Poll::Ready(Some(incoming))
    }

    /// What the session hears of a decoded frame; pings and a close are
    /// answered here.
    fn on_decoded(&mut self, decoded: Result<Option<Decoded>, Violation>) -> Option<Incoming> {
        let incoming = match decoded {
            Ok(None) => return None,
            Ok(Some(Decoded::Message { data, binary })) => Incoming::Message { body: data, binary },
            Ok(Some(Decoded::Ping(payload))) => {
                if !self.close_sent {
                    self.out.push_pong(Frame::Own(server_frame(OpCode::Pong, false, &payload)));
                }
                Incoming::Control
            }
            Ok(Some(Decoded::Pong)) => Incoming::Control,
            Ok(Some(Decoded::Close(code))) => {
                self.close_received = true;
                if !self.close_sent {
                    // The usual answer echoes the client's code.
                    let mut payload = Vec::new();
                    if let Some(code) = code {
                        close_payload(code, "", &mut payload);
                    }
                    self.encode(OpCode::Close, &payload);
                    self.close_sent = true;
                }
                Incoming::Goodbye(code)
            }
            Err(violation) => {
                self.reading_done = true;
                Incoming::Violation(violation)
            }
        };
        Some(incoming)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Incoming;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        let this = self.get_mut();
        // Pongs and the answer to a close go out as soon as they can.
        if !this.out.is_empty() {
            match this.poll_write_out(cx) {
                Poll::Ready(Err(err)) => {
                    this.reading_done = true;
                    return Poll::Ready(Some(Incoming::Failed(err.to_string())));
                }
                Poll::Pending if this.out.len() > OUT_HIGH_WATER || this.close_received => return Poll::Pending,
                _ => {}
            }
        }
        // After the client's close, nothing more is read: the stream ends
        // once our answer is out.
        if this.reading_done || this.close_received {
            this.reading_done = true;
            return Poll::Ready(None);
        }
        loop {
            if let Some(unread) = this.unread.as_mut() {
                let mut input = &unread[..];
                let decoded = this.decoder.decode(&mut input);
                let used = unread.len() - input.len();
                bytes::Buf::advance(&mut **unread, used);
                if unread.is_empty() {
                    this.unread = None;
                }
                if let Some(incoming) = this.on_decoded(decoded) {
                    return this.answered(incoming, cx);
                }
            }
            let mut buf = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut buf);
            if let Err(err) = ready!(Pin::new(&mut this.io).poll_read(cx, &mut read)) {
                this.reading_done = true;
                return Poll::Ready(Some(Incoming::Failed(err.to_string())));
            }
            let mut input = read.filled();
            if input.is_empty() {
                this.reading_done = true;
                return Poll::Ready(None);
            }
            let decoded = this.decoder.decode(&mut input);
            if !input.is_empty() {
                this.unread = Some(Box::new(Bytes::copy_from_slice(input)));
            }
            if let Some(incoming) = this.on_decoded(decoded) {
                return this.answered(incoming, cx);
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.out.len() >= OUT_HIGH_WATER {
            ready!(this.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> io::Result<()> {
        let this = self.get_mut();
        // Nothing may follow a close frame.
        if this.close_sent {
            return Ok(());
        }
        let (opcode, payload) = match message {
            Message::Text(payload) => (OpCode::Text, payload),
            Message::Binary(payload) => (OpCode::Binary, payload),
            Message::Session(greeting) => (OpCode::Text, Payload::new(greeting.json().to_string().into())),
            Message::Ping => {
                this.encode(OpCode::Ping, &[]);
                return Ok(());
            }
            Message::Accepted => return Ok(()),
            Message::Close { code, reason } => {
                let mut payload = Vec::new();
                close_payload(code, &reason, &mut payload);
                this.encode(OpCode::Close, &payload);
                this.close_sent = true;
                return Ok(());
            }
        };
        let compress = this.compress.filter(|c| payload.data().len() >= c.min_bytes as usize);
        this.out.push(websocket_frame(payload, opcode, compress.map(|c| c.window_bits)));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::decoder::tests::client_frame;
    use super::super::frame::Header;
    use super::*;
    use crate::base::message::Payload;

    const SETTINGS: Settings = Settings {
        max_message: 1 << 20,
        inflate: Some(InflateLimits { rate: 0, ratio: 0 }),
        compress: Some(Compressing { min_bytes: 16, window_bits: 15 }),
    };

    /// Reads one server frame: its header and payload.
    async fn read_server_frame(client: &mut tokio::io::DuplexStream) -> (Header, Vec<u8>) {
        let mut head = vec![0; 2];
        client.read_exact(&mut head).await.unwrap();
        let extra = match head[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        head.resize(2 + extra, 0);
        client.read_exact(&mut head[2..]).await.unwrap();
        let (header, _) = Header::parse(&head).unwrap().unwrap();
        let mut payload = vec![0; header.len as usize];
        client.read_exact(&mut payload).await.unwrap();
        (header, payload)
    }

    #[tokio::test]
    async fn pings_are_answered_and_the_close_handshake_completes() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        // The first frame came with the upgrade request.
        let early = Bytes::from(client_frame(OpCode::Text, true, false, b"early"));
        let mut ws = WebSocket::new(server, early, SETTINGS);
        assert!(matches!(ws.next().await, Some(Incoming::Message { body, binary: false }) if body == "early"));
        client.write_all(&client_frame(OpCode::Ping, true, false, b"hi")).await.unwrap();
        assert!(matches!(ws.next().await, Some(Incoming::Control)));
        let (pong, payload) = read_server_frame(&mut client).await;
        assert_eq!((pong.opcode, payload.as_slice()), (OpCode::Pong, &b"hi"[..]));
        client.write_all(&client_frame(OpCode::Close, true, false, &[0x03, 0xe9])).await.unwrap();
        assert!(matches!(ws.next().await, Some(Incoming::Goodbye(Some(1001)))));
        assert!(ws.next().await.is_none(), "the stream ends after the client's close");
        let (close, payload) = read_server_frame(&mut client).await;
        assert_eq!((close.opcode, payload.as_slice()), (OpCode::Close, &[0x03, 0xe9][..]), "the code echoed");
    }

    #[tokio::test]
    async fn messages_go_out_compressed_from_the_threshold_and_nothing_after_a_close() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut ws = WebSocket::new(server, Bytes::new(), SETTINGS);
        let long = "a long enough message ".repeat(4);
        ws.feed(Message::text("short")).await.unwrap();
        ws.feed(Message::text(long.clone())).await.unwrap();
        ws.feed(Message::Binary(Payload::from("bin"))).await.unwrap();
        ws.feed(Message::Close { code: 4000, reason: "kicked".into() }).await.unwrap();
        ws.feed(Message::text("after the close")).await.unwrap();
        ws.flush().await.unwrap();
        assert!(!ws.out.holds_storage(), "no write buffer kept");
        let (short, payload) = read_server_frame(&mut client).await;
        assert_eq!((short.compressed, payload.as_slice()), (false, &b"short"[..]));
        let (compressed, payload) = read_server_frame(&mut client).await;
        assert!(compressed.compressed && compressed.fin && compressed.mask.is_none());
        assert_eq!(super::super::deflate::inflate(&payload, 1000).unwrap(), long.as_bytes());
        assert_eq!(read_server_frame(&mut client).await.0.opcode, OpCode::Binary);
        let (close, payload) = read_server_frame(&mut client).await;
        assert_eq!((close.opcode, &payload[2..]), (OpCode::Close, &b"kicked"[..]));
        drop(ws);
        assert_eq!(client.read(&mut [0; 16]).await.unwrap(), 0, "nothing after the close frame");
    }

    /// A push to many sessions is framed once: every connection queues the
    /// same bytes, compressed or not, and writes them without a copy.
    #[tokio::test]
    async fn a_shared_push_is_framed_once_for_every_connection() {
        let push = Message::new(Payload::shared(Bytes::from("a broadcast to many sessions ".repeat(8))), false);
        for compress in [None, SETTINGS.compress] {
            let settings = Settings { compress, ..SETTINGS };
            let mut queued = Vec::new();
            for _ in 0..3 {
                let (_client, server) = tokio::io::duplex(1 << 16);
                let mut ws = WebSocket::new(server, Bytes::new(), settings);
                ws.feed(push.clone()).await.unwrap();
                let frame = ws.out.front().unwrap();
                queued.push((frame.as_ptr(), Header::parse(frame).unwrap().unwrap().0.compressed));
            }
            assert!(queued.iter().all(|frame| frame.0 == queued[0].0), "one frame, shared");
            assert_eq!(queued[0].1, compress.is_some());
        }
    }

    #[tokio::test]
    async fn a_violation_is_reported_once_and_reading_stops() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut ws = WebSocket::new(server, Bytes::new(), SETTINGS);
        client.write_all(&client_frame(OpCode::Text, true, false, b"\xff")).await.unwrap();
        assert!(matches!(ws.next().await, Some(Incoming::Violation(Violation::InvalidPayload(_)))));
        client.write_all(&client_frame(OpCode::Text, true, false, b"ok")).await.unwrap();
        assert!(ws.next().await.is_none());
    }
}
