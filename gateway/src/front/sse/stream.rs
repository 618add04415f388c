//! An SSE session's connection as a `Transport`: what the client posts
//! comes in through its inbox; what the session writes goes out as events,
//! on the socket itself ([`SocketOut`]: a stream is its connection's first
//! request, see `front::sse`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::ReadBuf;

use super::codec::{self, EventId};
use crate::admission::Entry;
use crate::base::message::Message;
use crate::base::transport::Incoming;
use crate::front::exchange::Io;
use crate::session::inboxes::Inbox;
use crate::Gateway;

/// Events gathered before a flush is forced.
const HIGH_WATER: usize = 64 * 1024;
/// How soon a browser's `EventSource` comes back after a drop.
pub const RETRY_MS: u64 = 1000;

/// The session's side of the stream.
pub struct SseStream<I: Io> {
    gateway: Arc<Gateway>,
    inbox: Inbox,
    out: SocketOut<I>,
    /// The response's start (its head and first events) until the backend
    /// takes the session: nothing is written before, so a refused client
    /// gets its refusal as the response, not a session.
    held: Option<Held>,
    /// Events fed since the last flush.
    pending: BytesMut,
    /// What the session event tells the client to post its messages with.
    send_token: String,
    /// A resumable session's next event id, from its greeting on.
    next_id: Option<EventId>,
    /// A heartbeat is among the pending events.
    ping_pending: bool,
    /// A heartbeat went out since the last read: the client counts as heard
    /// (the kernel drops it if it does not take it, see `front::serve_accepted`).
    pinged: bool,
    /// A close event is among the pending events: the response ends after it.
    closing: bool,
    ended: bool,
}

/// The events a stream's response begins with: how soon to come back,
/// and, for a session that will not greet its client (one that is not
/// resumable), its id and send token.
pub fn first_events(id: protocol::SessionId, send_token: &str, greets: bool) -> Bytes {
    let mut first = BytesMut::new();
    codec::retry(&mut first, RETRY_MS);
    if !greets {
        let hello = serde_json::json!({"type": "session", "id": id.as_str(), "send": send_token});
        codec::named(&mut first, "session", &hello.to_string(), None);
    }
    first.freeze()
}

/// What a stream begins with once its session is taken: the response's
/// head and first events; or, refused, a response that says why.
pub struct Held {
    pub head: BytesMut,
    /// The CORS header a refusal carries too.
    pub allow_origin: Option<http::HeaderValue>,
}

impl Held {
    /// The response a client gets whose session was refused before it
    /// began, as a WebSocket client gets a close code: the backend's 4xx
    /// (4000 + status) as that status, anything else 503.
    fn refusal(&self, code: u16, reason: &str) -> BytesMut {
        let status = match code {
            4400..=4499 => http::StatusCode::from_u16(code - 4000).unwrap_or(http::StatusCode::FORBIDDEN),
            _ => http::StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = serde_json::json!({"type": "close", "code": code, "reason": reason}).to_string() + "\n";
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        headers.insert(http::header::CONTENT_LENGTH, body.len().into());
        if let Some(origin) = &self.allow_origin {
            headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        let mut out = crate::front::exchange::raw_head(status, &headers);
        out.extend_from_slice(body.as_bytes());
        out
    }
}

impl<I: Io> SseStream<I> {
    /// The stream of the session whose inbox this is, on `out`, to begin
    /// with `held` once its session is taken; its greeting tells the
    /// client `send_token`.
    pub fn new(gateway: Arc<Gateway>, inbox: Inbox, send_token: String, out: SocketOut<I>, held: Held) -> SseStream<I> {
        SseStream {
            gateway,
            inbox,
            out,
            held: Some(held),
            pending: BytesMut::new(),
            send_token,
            next_id: None,
            ping_pending: false,
            pinged: false,
            closing: false,
            ended: false,
        }
    }
}

fn close_event(out: &mut BytesMut, code: u16, reason: &str) {
    codec::named(out, "close", &serde_json::json!({"code": code, "reason": reason}).to_string(), None);
}

impl<I: Io> Drop for SseStream<I> {
    fn drop(&mut self) {
        self.gateway.inboxes().close(&self.inbox);
        self.flush_at_drop();
    }
}

impl<I: Io> SseStream<I> {
    /// What is left (the close event after a client's close) goes if it can.
    fn flush_at_drop(&mut self) {
        if !self.pending.is_empty() {
            let left = self.pending.split().freeze();
            self.out.write_now(left);
        }
    }
}

impl<I: Io> Stream for SseStream<I> {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        if self.ended {
            self.flush_at_drop();
            return Poll::Ready(None);
        }
        if std::mem::take(&mut self.pinged) {
            return Poll::Ready(Some(Incoming::Control));
        }
        if let Poll::Ready(posted) = self.inbox.receiver.poll_recv(cx).map(|posted| posted.map(|boxed| boxed.incoming))
        {
            if let Some(Incoming::Goodbye(code)) = posted {
                // The client ended the session: it is told so, and the
                // stream ends, as a WebSocket's close handshake would.
                close_event(&mut self.pending, code.unwrap_or(1000), "");
                self.ended = true;
            }
            return Poll::Ready(posted);
        }
        ready!(self.out.poll_gone(cx));
        self.ended = true;
        Poll::Ready(Some(Incoming::Failed("the client closed the event stream".into())))
    }
}

impl<I: Io> Sink<Message> for SseStream<I> {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.len() >= HIGH_WATER {
            ready!(self.as_mut().poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> io::Result<()> {
        let this = self.get_mut();
        match (&message, &this.held) {
            (Message::Accepted, Some(_)) => {
                let held = this.held.take().expect("held");
                let mut start = held.head;
                start.extend_from_slice(&this.pending);
                this.pending = start;
                return Ok(());
            }
            (Message::Close { code, reason }, Some(held)) => {
                this.pending = held.refusal(*code, reason);
                this.held = None;
                this.closing = true;
                return Ok(());
            }
            (_, Some(_)) if this.pending.len() > this.gateway.config().outbound_queue_bytes => {
                return Err(io::Error::other("more held for a session not yet taken than its queue's bound"));
            }
            _ => {}
        }
        let out = &mut this.pending;
        let binary = message.is_binary();
        match message {
            Message::Text(payload) | Message::Binary(payload) => {
                let id = this.next_id.as_mut().map(|next| {
                    let id = next.clone();
                    next.seq += 1;
                    id
                });
                codec::message(out, payload.data(), binary, id.as_ref());
            }
            Message::Session(greeting) => {
                let mut hello = greeting.json();
                hello["send"] = this.send_token.clone().into();
                // Where the client stands: a browser's `EventSource` sends it
                // back as Last-Event-ID if it drops before the next message.
                let seen = EventId { token: greeting.resume.clone(), seq: greeting.next_seq.saturating_sub(1) };
                codec::named(out, "session", &hello.to_string(), Some(&seen));
                this.next_id = Some(EventId { token: greeting.resume, seq: greeting.next_seq });
            }
            Message::Ping => {
                codec::ping(out);
                this.ping_pending = true;
            }
            Message::Close { code, reason } => {
                close_event(out, code, &reason);
                this.closing = true;
            }
            Message::Accepted => {}
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.held.is_some() {
            return Poll::Ready(Ok(()));
        }
        if !this.pending.is_empty() {
            ready!(this.out.poll_write_events(cx, &mut this.pending))?;
            this.pinged |= std::mem::take(&mut this.ping_pending);
        }
        if this.closing {
            ready!(this.out.poll_end(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        self.out.poll_end(cx)
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client closed the event stream")
}

/// Events written on the connection itself, the response delimited by its
/// close: what a connection's first request gets (see `front::sniff`). It
/// holds the connection's place among its address's.
pub struct SocketOut<I> {
    io: I,
    _entry: Entry,
}

impl<I> SocketOut<I> {
    pub fn new(io: I, entry: Entry) -> SocketOut<I> {
        SocketOut { io, _entry: entry }
    }
}

impl<I: Io> SocketOut<I> {
    /// Writes all of `events`, emptying it.
    fn poll_write_events(&mut self, cx: &mut Context<'_>, events: &mut BytesMut) -> Poll<io::Result<()>> {
        while !events.is_empty() {
            match ready!(Pin::new(&mut self.io).poll_write(cx, events))? {
                0 => return Poll::Ready(Err(gone())),
                n => events.advance(n),
            }
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Ready once the client has gone. It sends nothing more on an event
    /// stream: what it does send is read and let go, until it closes.
    fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 64];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => continue,
                _ => return Poll::Ready(()),
            }
        }
    }

    /// Ends the response, after what was written.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    /// What is left at the end, if it can go at once; dropped otherwise.
    fn write_now(&mut self, events: Bytes) {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let _ = Pin::new(&mut self.io).poll_write(&mut cx, &events);
    }
}
