//! What the HTTP fronts share (the WebSocket upgrade in `http`, and
//! `sse`): a client's stream, reading a request's body and answering it,
//! the connection's params every event carries, and how its session
//! begins.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::base::close::CloseReason;
use crate::metrics::Count;
use crate::resume::token::{self, Ask};
use crate::session::task::Start;
use crate::session::Host;
use crate::upstream::cgi;
use crate::upstream::fastcgi::{ParamBlock, ParamTooLarge};
use crate::Gateway;

/// A response, whole (an SSE session's event stream is written on the
/// socket itself, hyper aside).
pub type Body = Full<Bytes>;
pub type Reply = Response<Body>;

/// A client's stream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A request's body, at most `max` bytes (else 413) within
/// `runtime::BODY_READ_TIMEOUT` (else 408).
pub async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, Reply> {
    let body = http_body_util::Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout(runtime::BODY_READ_TIMEOUT, body).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(_)) => Err(respond(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "request body too large\n")),
        Err(_) => Err(respond(StatusCode::REQUEST_TIMEOUT, "text/plain", "request body too slow\n")),
    }
}

/// The head of a response written on the socket, hyper aside: `status`,
/// `headers`, and the connection's end as the body's.
pub fn raw_head(status: StatusCode, headers: &HeaderMap) -> BytesMut {
    let mut head = BytesMut::from(format!("HTTP/1.1 {status}\r\nconnection: close\r\n").as_bytes());
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// With no allow-list every origin is fine; otherwise the Origin header
/// must be one of the list (a client without one is not a browser page).
pub fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    origin.is_none_or(|origin| allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)))
}

pub fn wants_websocket(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// How the connection's session begins: new, or resumed as its query
/// string asks (refused with the close reason when it cannot be).
pub async fn start(gateway: &Arc<Gateway>, ask: Ask) -> Result<Start, CloseReason> {
    let resumable = gateway.config().resume_grace_ms > 0;
    let id = protocol::SessionId::random();
    match ask {
        Ask::Plain => Ok(Start::New { id, resumable: false, pusher: None }),
        Ask::Resumable => Ok(Start::New { id, resumable, pusher: None }),
        Ask::Resume { token, last } => {
            let token = gateway.resume_keys().verify(&token).ok_or(CloseReason::ResumeInvalid)?;
            let (mailbox, carried) = crate::handover::claim(gateway, token).await.map_err(token::refusal_reason)?;
            Ok(Start::Resumed { id: token.session, mailbox, carried, last })
        }
    }
}

/// The params every event of this connection carries: where the client is
/// and what it asked for (see `upstream::cgi`), at most `--max-header-bytes`
/// of them (each event carries them again); else why not (a 431, counted).
pub fn connection_params(
    gateway: &Gateway,
    uri: &Uri,
    headers: &HeaderMap,
    remote: SocketAddr,
    left_out: &[HeaderName],
) -> Result<ParamBlock, String> {
    let limit = gateway.config().max_header_bytes;
    let encoded = encode_connection_params(gateway, uri, headers, remote, left_out);
    let params = encoded.map_err(|err| err.to_string()).and_then(|params| match params.encoded().len() > limit {
        true => Err(format!("headers over {limit} bytes (--max-header-bytes)")),
        false => Ok(params),
    });
    if params.is_err() {
        gateway.metrics().count(Count::RefusedHeaders);
    }
    params
}

fn encode_connection_params(
    gateway: &Gateway,
    uri: &Uri,
    headers: &HeaderMap,
    remote: SocketAddr,
    left_out: &[HeaderName],
) -> Result<ParamBlock, ParamTooLarge> {
    let mut params = ParamBlock::default();
    cgi::client_address(&mut params, remote)?;
    cgi::request_target(&mut params, uri)?;
    gateway.events().header_params(&mut params, headers, left_out)?;
    Ok(params.compact())
}

pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}
