//! An SSE session's connection as a `Transport`: what the client posts
//! comes in through its inbox; what the session writes goes out as events
//! on the response body, which hyper sends as the client reads.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream};
use hyper::body::{Body, Frame};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

use super::codec::{self, EventId};
use crate::base::message::Message;
use crate::base::transport::Incoming;
use crate::session::inboxes::Inbox;
use crate::session::Host;
use crate::Gateway;

/// Chunks between the session and hyper: each is one flush's events, so
/// the session feels a slow reader after two writes' worth.
const CHUNKS: usize = 2;
/// Events gathered before a flush is forced.
const HIGH_WATER: usize = 64 * 1024;
/// How soon a browser's `EventSource` comes back after a drop.
pub const RETRY_MS: u64 = 1000;

/// The session's side of the stream.
pub struct SseStream {
    gateway: Arc<Gateway>,
    inbox: Inbox,
    chunks: PollSender<Bytes>,
    /// Events fed since the last flush.
    pending: BytesMut,
    /// Fires when hyper drops the body: the client went away.
    gone: oneshot::Receiver<()>,
    /// What the session event tells the client to post its messages with.
    send_token: String,
    /// A resumable session's next event id, from its greeting on.
    next_id: Option<EventId>,
    /// A heartbeat is among the pending events.
    ping_pending: bool,
    /// A heartbeat went out since the last read: the client counts as heard
    /// (the kernel drops it if it does not take it, see `front::serve_accepted`).
    pinged: bool,
    /// A close event is among the pending events: the body ends after it.
    closing: bool,
    ended: bool,
}

/// The response body: the stream's events, as the session flushes them.
pub struct SseBody {
    chunks: mpsc::Receiver<Bytes>,
    _alive: oneshot::Sender<()>,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.chunks.poll_recv(cx).map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    }
}

impl SseStream {
    /// A stream for session `id` (its inbox already open), and the body
    /// that carries it. A session that will not greet its client (one that
    /// is not resumable) tells it its id and send token at once.
    pub fn new(gateway: Arc<Gateway>, inbox: Inbox, greets: bool) -> (SseStream, SseBody) {
        let (sender, chunks) = mpsc::channel(CHUNKS);
        let (alive, gone) = oneshot::channel();
        let send_token = gateway.resume_keys().sign_sender(inbox.id());
        let mut first = BytesMut::new();
        codec::retry(&mut first, RETRY_MS);
        if !greets {
            let hello = serde_json::json!({"type": "session", "id": inbox.id().as_str(), "send": send_token});
            codec::named(&mut first, "session", &hello.to_string());
        }
        sender.try_send(first.freeze()).expect("a new channel has room");
        let stream = SseStream {
            gateway,
            inbox,
            chunks: PollSender::new(sender),
            pending: BytesMut::new(),
            gone,
            send_token,
            next_id: None,
            ping_pending: false,
            pinged: false,
            closing: false,
            ended: false,
        };
        (stream, SseBody { chunks, _alive: alive })
    }
}

fn close_event(out: &mut BytesMut, code: u16, reason: &str) {
    codec::named(out, "close", &serde_json::json!({"code": code, "reason": reason}).to_string());
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.gateway.inboxes().close(&self.inbox);
        // What is left (the close event after a client's close), if there
        // is room; the body ends after it.
        if let Some(chunks) = self.chunks.get_ref().filter(|_| !self.pending.is_empty()) {
            let _ = chunks.try_send(self.pending.split().freeze());
        }
    }
}

impl Stream for SseStream {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if std::mem::take(&mut self.pinged) {
            return Poll::Ready(Some(Incoming::Control));
        }
        if let Poll::Ready(posted) = self.inbox.receiver.poll_recv(cx) {
            if let Some(Incoming::Goodbye(code)) = posted {
                // The client ended the session: it is told so, and the
                // stream ends, as a WebSocket's close handshake would.
                close_event(&mut self.pending, code.unwrap_or(1000), "");
                self.ended = true;
            }
            return Poll::Ready(posted);
        }
        ready!(Pin::new(&mut self.gone).poll(cx)).ok();
        self.ended = true;
        Poll::Ready(Some(Incoming::Failed("the client closed the event stream".into())))
    }
}

impl Sink<Message> for SseStream {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.len() >= HIGH_WATER {
            ready!(self.as_mut().poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> io::Result<()> {
        let this = self.get_mut();
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
                codec::named(out, "session", &hello.to_string());
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
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the client closed the event stream");
        ready!(self.chunks.poll_reserve(cx)).map_err(|_| gone())?;
        let chunk = self.pending.split().freeze();
        self.chunks.send_item(chunk).map_err(|_| gone())?;
        self.pinged |= std::mem::take(&mut self.ping_pending);
        if self.closing {
            self.chunks.close();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        self.chunks.close();
        Poll::Ready(Ok(()))
    }
}
