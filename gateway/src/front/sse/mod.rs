//! The Server-Sent Events front, for clients that cannot keep a WebSocket
//! open: a `GET` that accepts `text/event-stream` opens a session, the
//! same session a WebSocket upgrade on that path would, and the client
//! posts its messages, one a request, to `PATH/send` with the send token
//! its stream's session event gave it (`PATH/close` ends the session).
//! `codec` is the wire format, `stream` the session's transport.
//!
//! A stream is always a connection's first request, served on the socket
//! (see `front::sniff`): asked on a connection hyper already serves, it is
//! sent to a connection of its own (307, `Connection: close`), where it
//! costs what a first request does and its client's end is seen at once.
//! A post waits for room in its session's inbox before its body is read:
//! what waits there is within `--max-pending-bytes`.

pub mod codec;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use runtime::Slot;
use tokio::io::AsyncWriteExt;

use crate::admission::{Entry, Refusal, Seat};
use crate::base::close::CloseReason;
use crate::base::transport::Incoming as Frame;
use crate::front::exchange::{connection_params, origin_allowed, raw_head, read_body, respond, start, Io, Reply};
use crate::metrics::Count;
use crate::resume::token::{self, Ask};
use crate::session::task::Start;
use crate::session::Host;
use crate::upstream::fastcgi::ParamBlock;
use crate::Gateway;
use codec::EventId;
use stream::{Held, SocketOut, SseStream};

/// Headers that matter to the stream alone: a session's params leave them
/// out (`Last-Event-ID` holds a resume token).
const STREAM_HEADERS: [HeaderName; 3] =
    [header::ACCEPT, header::CACHE_CONTROL, HeaderName::from_static("last-event-id")];

/// How long a post waits for room in its session's inbox, its body unread.
const POST_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A `GET` whose client takes an event stream (and is no WebSocket upgrade).
pub fn wants_stream(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && !crate::front::exchange::wants_websocket(headers)
        && headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|accept| {
            accept.split(',').any(|kind| kind.split(';').next().unwrap_or("").trim() == "text/event-stream")
        })
}

/// What a post to a session asks: a message, or the end.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    Send,
    Close,
}

/// A `POST` to `PATH/send` or `PATH/close` that carries a bearer token
/// (an `OPTIONS` to them is its CORS preflight).
pub fn post_kind(req: &Request<Incoming>) -> Option<PostKind> {
    let kind = match req.uri().path() {
        path if path.ends_with("/send") => PostKind::Send,
        path if path.ends_with("/close") => PostKind::Close,
        _ => return None,
    };
    let preflight = req.method() == Method::OPTIONS
        && req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD).is_some_and(|m| m == "POST");
    let bearer = req.headers().get(header::AUTHORIZATION).is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
    ((req.method() == Method::POST && bearer) || preflight).then_some(kind)
}

/// What a stream let in begins with.
struct Admitted {
    params: ParamBlock,
    seat: Seat,
    start: Start,
}

/// Lets an SSE stream in, or says why not: the same refusals as an
/// upgrade (origin, per-address limits, headers, a full gateway, a
/// resume), as an HTTP status with `{"code","reason"}` in the close codes
/// a WebSocket client would get.
async fn admit(parts: &Parts, gateway: &Arc<Gateway>, remote: SocketAddr, entry: &Entry) -> Result<Admitted, Reply> {
    if !origin_allowed(&gateway.config().allowed_origins, &parts.headers) {
        gateway.metrics().count(Count::RefusedOrigin);
        return Err(respond(StatusCode::FORBIDDEN, "text/plain", "origin not allowed\n"));
    }
    let seat = match gateway.admission().admit(entry, remote.ip(), gateway.metrics()) {
        Ok(seat) => seat,
        Err(refusal @ (Refusal::TooFast | Refusal::TooMany)) => {
            return Err(respond(StatusCode::TOO_MANY_REQUESTS, "text/plain", refusal.text()))
        }
        Err(Refusal::Full) => return Err(refused(gateway, &parts.headers, CloseReason::ServerFull)),
    };
    let mut params = connection_params(gateway, &parts.uri, &parts.headers, remote, &STREAM_HEADERS)
        .map_err(|why| respond(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "text/plain", format!("{why}\n")))?;
    gateway.events().transport_param(&mut params, "sse").expect("a short param fits");
    let start = start(gateway, stream_ask(parts)).await.map_err(|reason| {
        tracing::info!(%remote, reason = reason.text(), "resume refused");
        refused(gateway, &parts.headers, reason)
    })?;
    Ok(Admitted { params, seat, start })
}

/// A stream let in, about to begin: its session's id and inbox, and the
/// events the response begins with.
struct Opening {
    admitted: Admitted,
    inbox: crate::session::inboxes::Inbox,
    send_token: String,
    first: Bytes,
}

impl Opening {
    fn new(gateway: &Arc<Gateway>, admitted: Admitted) -> Opening {
        let (id, greets) = match &admitted.start {
            Start::New { id, resumable, .. } => (*id, *resumable),
            Start::Resumed { id, .. } => (*id, true),
        };
        // Open before the client hears of its send token.
        let inbox = gateway.inboxes().open(id);
        let send_token = gateway.resume_keys().sign_sender(id);
        let first = stream::first_events(id, &send_token, greets);
        Opening { admitted, inbox, send_token, first }
    }

    /// Runs the session, its events going to `out` after `held`.
    fn run<I: Io>(self, gateway: Arc<Gateway>, out: SocketOut<I>, held: Held) {
        let Admitted { params, seat, start } = self.admitted;
        let stream = SseStream::new(gateway.clone(), self.inbox, self.send_token, out, held);
        tokio::spawn(crate::session::task::run(gateway, stream, params.compact(), seat, start));
    }
}

/// A stream's response headers.
fn stream_headers(request: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // nginx passes each event on at once, not when its buffer fills.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    allow_origin(request, &mut headers);
    headers
}

/// A stream asked for on a connection hyper already serves (not its
/// first request) is asked again on a connection of its own: a browser's
/// `EventSource` and `fetch` follow, keeping the request's headers
/// (`Last-Event-ID` too). Served here, it would hold hyper's buffers for
/// its whole life, and a client that sent a byte more and left would not
/// be seen gone until a heartbeat failed to reach it.
pub fn to_a_connection_of_its_own(req: &Request<Incoming>) -> Reply {
    let mut reply = respond(StatusCode::TEMPORARY_REDIRECT, "text/plain", "ask again on a connection of its own\n");
    let location = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let headers = reply.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    allow_origin(req.headers(), headers);
    reply
}

/// A stream asked for by a connection's first request (see
/// `front::sniff`): the response head and the events after it are written
/// on the socket once the backend takes the session, the response ending
/// with the connection. The socket holds its address's place (`entry`)
/// and gives back its handshake slot.
pub async fn serve_on_socket<I: Io>(
    parts: Parts,
    mut io: I,
    gateway: Arc<Gateway>,
    remote: SocketAddr,
    entry: Entry,
    slot: &Slot,
) {
    let opening = match admit(&parts, &gateway, remote, &entry).await {
        Ok(admitted) => Opening::new(&gateway, admitted),
        Err(reply) => return write_refusal(&mut io, reply, gateway.config().write_timeout()).await,
    };
    slot.release();
    let headers = stream_headers(&parts.headers);
    let mut head = raw_head(StatusCode::OK, &headers);
    head.extend_from_slice(&opening.first);
    let held = Held { head, allow_origin: headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).cloned() };
    opening.run(gateway, SocketOut::new(io, entry), held);
}

/// A refusal written as a whole HTTP response on a connection that ends
/// with it.
async fn write_refusal<I: Io>(io: &mut I, reply: Reply, timeout: std::time::Duration) {
    let (parts, body) = reply.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut headers = parts.headers;
    headers.insert(header::CONTENT_LENGTH, body.len().into());
    let mut out = raw_head(parts.status, &headers);
    out.extend_from_slice(&body);
    let write = async {
        io.write_all(&out).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(timeout, write).await;
}

/// What the stream asks for: a resume by `Last-Event-ID` (what a browser's
/// `EventSource` sends when it comes back), else by the query string, as
/// an upgrade's.
fn stream_ask(parts: &Parts) -> Ask {
    let last_event = parts.headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(EventId::parse);
    match last_event {
        Some(EventId { token, seq }) => Ask::Resume { token, last: Some(seq) },
        None => token::ask(parts.uri.query().unwrap_or("")),
    }
}

/// A stream refused before it began, with the close code a WebSocket
/// client would get: 503 for a full gateway or a resume to try again, 410
/// for a session that cannot come back. A browser's `EventSource` gives
/// up on any status but 200.
fn refused(gateway: &Gateway, headers: &HeaderMap, reason: CloseReason) -> Reply {
    gateway.metrics().closed(reason);
    let status = match reason {
        CloseReason::ServerFull | CloseReason::ResumeFailed => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::GONE,
    };
    let body = serde_json::json!({"type": "close", "code": reason.code(), "reason": reason.text()});
    let mut response = respond(status, "application/json", format!("{body}\n"));
    allow_origin(headers, response.headers_mut());
    response
}

/// A message posted to a session, or its end: authorised by the session's
/// send token alone, and taken only by the gateway that holds the session
/// (see docs/PROTOCOL.md on sticky routing).
pub async fn post(req: Request<Incoming>, gateway: &Gateway, kind: PostKind) -> Reply {
    if !origin_allowed(&gateway.config().allowed_origins, req.headers()) {
        gateway.metrics().count(Count::RefusedOrigin);
        return respond(StatusCode::FORBIDDEN, "text/plain", "origin not allowed\n");
    }
    let headers = req.headers().clone();
    let mut reply = match req.method() {
        &Method::OPTIONS => preflight(),
        _ => deliver(req, gateway, kind).await,
    };
    allow_origin(&headers, reply.headers_mut());
    reply
}

async fn deliver(req: Request<Incoming>, gateway: &Gateway, kind: PostKind) -> Reply {
    let token =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(id) = token.and_then(|token| gateway.resume_keys().verify_sender(token.trim())) else {
        gateway.metrics().count(Count::SsePostsRefused);
        return respond(StatusCode::FORBIDDEN, "text/plain", "send token invalid\n");
    };
    let Some(inbox) = gateway.inboxes().get(id) else {
        gateway.metrics().count(Count::SsePostsRefused);
        return match () {
            _ if gateway.registry().mailbox(&id).is_some() => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "session away: post again once its stream is back\n",
            ),
            _ if gateway.inboxes().ended_here(id) => respond(StatusCode::GONE, "text/plain", "session ended\n"),
            _ => respond(StatusCode::MISDIRECTED_REQUEST, "text/plain", "session not on this gateway\n"),
        };
    };
    let binary = req.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/octet-stream");
    let max_message = gateway.config().max_message;
    let length = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if length.is_some_and(|length| length > max_message) {
        return respond(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "request body too large\n");
    }
    // Room for the body before it is read: a client whose session does not
    // take its posts holds no more than its inbox's room.
    let room = match inbox.room(length.unwrap_or(max_message), POST_WAIT).await {
        Ok(room) => room,
        Err(refusal) => return inbox_refusal(refusal),
    };
    let body = match read_body(req, max_message).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let frame = match kind {
        PostKind::Close => Frame::Goodbye(Some(1000)),
        PostKind::Send if !binary && std::str::from_utf8(&body).is_err() => {
            let why = "a text message that is not UTF-8 (send binary as application/octet-stream)\n";
            return respond(StatusCode::BAD_REQUEST, "text/plain", why);
        }
        PostKind::Send => Frame::Message { body, binary },
    };
    let size = match &frame {
        Frame::Message { body, .. } => body.len(),
        _ => 0,
    };
    match inbox.post(frame, room, size, POST_WAIT).await {
        Ok(()) => {
            gateway.metrics().count(Count::SsePosts);
            respond(StatusCode::ACCEPTED, "text/plain", Bytes::new())
        }
        Err(refusal) => inbox_refusal(refusal),
    }
}

fn inbox_refusal(refusal: crate::session::inboxes::Refusal) -> Reply {
    match refusal {
        crate::session::inboxes::Refusal::Busy => {
            respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "session busy, try again\n")
        }
        crate::session::inboxes::Refusal::Ended => respond(StatusCode::GONE, "text/plain", "session ended\n"),
    }
}

fn preflight() -> Reply {
    let mut reply = respond(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
    let headers = reply.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    reply
}

/// A page of another origin may read the answer when its origin is one
/// the gateway takes (checked before): the same origins a WebSocket
/// upgrade is allowed from.
fn allow_origin(request: &HeaderMap, response: &mut HeaderMap) {
    if let Some(origin) = request.get(header::ORIGIN) {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response.insert(header::VARY, HeaderValue::from_static("origin"));
    }
}
