//! The gateway's HTTP front: a WebSocket upgrade on any path becomes a
//! session, and so does a GET that accepts an event stream (`front::sse`);
//! a path under an `--http-route` goes to its backend as CGI; an SSE
//! session's posts go to it; a `--page` is served on GET; anything else is
//! 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::admission::{Entry, Refusal, Seat};
use crate::base::close::CloseReason;
use crate::front::exchange::{
    connection_params, origin_allowed, raw_head, read_body, respond, start, wants_websocket, Io, Reply,
};
use crate::front::sniff::{self, First, Rewound};
use crate::front::sse;
use crate::front::websocket::{self, deflate, WebSocket};
use crate::metrics::Count;
use crate::resume::token::{self, Ask};
use crate::session::task::Start;
use crate::session::Host;
use crate::upstream::fastcgi::ParamBlock;
use crate::Gateway;
use runtime::Slot;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a first request's head read before hyper (see `front::sniff`).
const SNIFF_LIMIT: usize = 16 * 1024;
/// How long a connection refused at accept is kept for its client to read why.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Serves a connection admitted at accept as `entry` (its place among its
/// address's lasts as long as the connection, or the session it becomes).
/// `slot`, its handshake slot, is given back early if it becomes an SSE
/// session, which holds a seat under `--max-connections` instead.
pub async fn serve_connection<I: Io>(stream: I, remote: SocketAddr, entry: Entry, slot: Slot, gateway: Arc<Gateway>) {
    let stream = match sniff::first_request(stream, SNIFF_LIMIT, HEADER_READ_TIMEOUT).await {
        None => return,
        Some(First::EventStream(parts, io)) => {
            let client =
                crate::admission::proxy::client_addr(&gateway.config().trusted_proxies, remote, &parts.headers);
            return sse::serve_on_socket(parts, io, gateway, client, entry, &slot).await;
        }
        Some(First::Other(rewound)) => rewound,
    };
    let service = service_fn(move |req| {
        let (gateway, entry) = (gateway.clone(), entry.clone());
        async move { Ok::<_, Infallible>(handle::<I>(req, gateway, remote, entry).await) }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(err) = result {
        tracing::debug!(%err, %remote, "http connection ended with an error");
    }
}

/// A connection refused at accept: its client is told why, in HTTP, and
/// what it sent is read so that closing does not reset the connection
/// before the answer is read.
pub async fn refuse(mut stream: tokio::net::TcpStream, refusal: Refusal) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let status = match refusal {
        Refusal::Full => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::TooFast | Refusal::TooMany => StatusCode::TOO_MANY_REQUESTS,
    };
    let body = refusal.text();
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    headers.insert(header::CONTENT_LENGTH, body.len().into());
    let mut response = raw_head(status, &headers);
    response.extend_from_slice(body.as_bytes());
    let answer = async {
        stream.write_all(&response).await?;
        stream.shutdown().await?;
        let mut unread = [0u8; 1024];
        while stream.read(&mut unread).await? > 0 {}
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, answer).await;
}

async fn handle<I: Io>(req: Request<Incoming>, gateway: Arc<Gateway>, peer: SocketAddr, entry: Entry) -> Reply {
    let remote = crate::admission::proxy::client_addr(&gateway.config().trusted_proxies, peer, req.headers());
    if wants_websocket(req.headers()) {
        return upgrade::<I>(req, gateway, remote, &entry);
    }
    if sse::wants_stream(req.method(), req.headers()) {
        return sse::to_a_connection_of_its_own(&req);
    }
    if let Some(route) = gateway.config().http_routes.iter().find(|r| req.uri().path().starts_with(&r.prefix)) {
        let pool = route.pool.clone();
        return forward(req, &gateway, remote, &pool).await;
    }
    if let Some(kind) = sse::post_kind(&req) {
        return sse::post(req, &gateway, kind).await;
    }
    match gateway.page(req.uri().path()).filter(|_| matches!(*req.method(), Method::GET | Method::HEAD)) {
        Some(page) => respond(StatusCode::OK, page.content_type, page.body.clone()),
        None => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// A plain HTTP request to a backend, as CGI: method, URI, headers and
/// body in; status, headers (Set-Cookie included) and body out. Events of
/// a session are something else; these carry no SESSIONID or EVENT.
async fn forward(req: Request<Incoming>, gateway: &Gateway, remote: SocketAddr, pool: &str) -> Reply {
    let params = match connection_params(gateway, req.uri(), req.headers(), remote, &[]) {
        Ok(params) => params,
        Err(why) => return respond(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "text/plain", format!("{why}\n")),
    };
    let method = req.method().as_str().to_owned();
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = match read_body(req, gateway.config().max_message).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let request = gateway.events().encode_http(&params, &method, content_type.as_deref(), &body);
    let pool = gateway.pool(pool).expect("checked at start");
    let response = match pool.call(&request, "http", &mut None).await {
        Ok(response) => response,
        Err(err) => {
            tracing::warn!(%err, %remote, "HTTP request to the backend failed");
            gateway.metrics().backend_failed(&err);
            let status = if err.is_timeout() { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::BAD_GATEWAY };
            return respond(status, "text/plain", "backend unavailable\n");
        }
    };
    let mut builder =
        Response::builder().status(StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY));
    for (name, value) in &response.headers {
        if !name.eq_ignore_ascii_case("status") && !name.eq_ignore_ascii_case("content-length") {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    builder
        .body(Full::new(response.body))
        .unwrap_or_else(|_| respond(StatusCode::BAD_GATEWAY, "text/plain", "malformed backend headers\n"))
}

/// Headers that matter to the handshake alone: a session's params leave
/// them out, as every event would carry them.
const HANDSHAKE_HEADERS: [HeaderName; 5] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_EXTENSIONS,
];

fn upgrade<I: Io>(mut req: Request<Incoming>, gateway: Arc<Gateway>, remote: SocketAddr, entry: &Entry) -> Reply {
    if req.method() != Method::GET {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "a WebSocket upgrade is a GET\n");
    }
    if req.headers().get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        let mut response = respond(StatusCode::UPGRADE_REQUIRED, "text/plain", "WebSocket version 13 only\n");
        response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, "13".parse().unwrap());
        return response;
    }
    if !origin_allowed(&gateway.config().allowed_origins, req.headers()) {
        gateway.metrics().count(Count::RefusedOrigin);
        return respond(StatusCode::FORBIDDEN, "text/plain", "origin not allowed\n");
    }
    let admission = gateway.admission().admit(entry, remote.ip(), gateway.metrics());
    if let Err(refusal @ (Refusal::TooFast | Refusal::TooMany)) = admission {
        return respond(StatusCode::TOO_MANY_REQUESTS, "text/plain", refusal.text());
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return respond(StatusCode::BAD_REQUEST, "text/plain", "missing Sec-WebSocket-Key\n");
    };
    let accept = websocket::handshake::accept_key(key.as_bytes());
    let params = match connection_params(&gateway, req.uri(), req.headers(), remote, &HANDSHAKE_HEADERS) {
        Ok(params) => params,
        Err(why) => return respond(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "text/plain", format!("{why}\n")),
    };
    let (agreed, settings) = websocket_settings(&gateway, req.headers());
    let pusher = crate::front::pusher::client_of(gateway.pusher_apps(), req.uri());
    let ask = match pusher {
        Some(_) => Ask::Plain,
        None => token::ask(req.uri().query().unwrap_or("")),
    };
    let upgraded = hyper::upgrade::on(&mut req);
    let client = Client { remote, params, ask, pusher };
    tokio::spawn(open_session::<I>(upgraded, gateway, settings, client, admission));
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(agreed) = agreed {
        response = response.header(header::SEC_WEBSOCKET_EXTENSIONS, agreed.response);
    }
    response.body(Full::default()).expect("static response parts are valid")
}

/// What the WebSocket connection will do: its message limit, and the
/// permessage-deflate agreed from the client's offers (when `--deflate`).
fn websocket_settings(gateway: &Gateway, headers: &HeaderMap) -> (Option<deflate::Agreed>, websocket::Settings) {
    let config = gateway.config();
    let offers = headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS);
    let agreed = match config.deflate {
        true => deflate::negotiate(offers.iter().filter_map(|v| v.to_str().ok())),
        false => None,
    };
    let compress = agreed
        .as_ref()
        .and_then(|a| a.window_bits)
        .map(|window_bits| websocket::Compressing { min_bytes: config.deflate_min_bytes, window_bits });
    let limits = websocket::decoder::InflateLimits { rate: config.max_inflate_rate, ratio: config.max_inflate_ratio };
    let inflate = agreed.is_some().then_some(limits);
    let settings = websocket::Settings { max_message: config.max_message, inflate, compress };
    (agreed, settings)
}

/// Who upgraded: the address, the params every event carries, what the
/// query asks of the session, and the Pusher app it connects to, if any.
struct Client {
    remote: SocketAddr,
    params: ParamBlock,
    ask: Ask,
    pusher: Option<Result<Arc<protocol::pusher::App>, crate::front::pusher::Refused>>,
}

/// Once the upgrade is through: the session on the upgraded connection,
/// or a close frame that says why there is none.
async fn open_session<I: Io>(
    upgraded: hyper::upgrade::OnUpgrade,
    gateway: Arc<Gateway>,
    settings: websocket::Settings,
    client: Client,
    admission: Result<Seat, Refusal>,
) {
    let Client { remote, mut params, ask, pusher } = client;
    let upgraded = match upgraded.await.map(|io| io.downcast::<TokioIo<Rewound<I>>>()) {
        Ok(Ok(parts)) => parts,
        Ok(Err(_)) => return tracing::error!(%remote, "upgraded connection of an unexpected type"),
        Err(err) => return tracing::debug!(%err, %remote, "upgrade failed"),
    };
    // What hyper read, then what it had not yet read of the sniffed head.
    let (io, unread) = upgraded.io.into_inner().into_parts();
    let read = match unread.is_empty() {
        true => upgraded.read_buf,
        false => [upgraded.read_buf, unread].concat().into(),
    };
    let mut ws = WebSocket::new(io, read, settings);
    // A close code tells a client why (and a browser can read it); an
    // HTTP error would not.
    let refuse = |reason: CloseReason| {
        gateway.metrics().closed(reason);
        crate::base::message::Message::closing(reason)
    };
    let Ok(seat) = admission else {
        let _ = ws.send(refuse(CloseReason::ServerFull)).await;
        return;
    };
    let seated = pusher.map(|client| -> Result<_, crate::front::pusher::Refused> {
        let app = client?;
        let seat = gateway.pusher_seats().take(&app).ok_or_else(|| {
            gateway.metrics().count(Count::RefusedAppQuota);
            crate::front::pusher::Refused { code: 4004, message: "Application is over connection quota".into() }
        })?;
        Ok(crate::session::pusher::PusherStart { app, seat })
    });
    let pusher = match seated.transpose() {
        Ok(start) => start,
        Err(refused) => {
            tracing::info!(%remote, code = refused.code, message = refused.message, "Pusher client refused");
            for message in refused.messages() {
                let _ = ws.feed(message).await;
            }
            let _ = ws.flush().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.next()).await;
            return;
        }
    };
    let start = match start(&gateway, ask).await {
        Ok(start) => start,
        Err(reason) => {
            tracing::info!(%remote, reason = reason.text(), "resume refused");
            let _ = ws.send(refuse(reason)).await;
            // Read on until the client answers, so it gets the close frame.
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.next()).await;
            return;
        }
    };
    let start = match (start, pusher) {
        (Start::New { id, resumable, .. }, Some(start)) => {
            if let Err(err) = crate::front::pusher::params(&mut params, &start.app, &id) {
                return tracing::warn!(%remote, %err, "no room for a Pusher client's params");
            }
            Start::New { id, resumable, pusher: Some(start) }
        }
        (start, _) => start,
    };
    // A task of its own, sized to the session alone: this one, with
    // the handshake's state in it, ends here.
    let metrics = gateway.clone();
    let session = crate::session::task::run(gateway, ws, params, seat, start);
    metrics.metrics().set(Count::SessionFutureBytes, size_of_val(&session));
    tokio::spawn(session);
}
