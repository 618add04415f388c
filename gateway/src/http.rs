//! The gateway's HTTP front: a WebSocket upgrade on any path becomes a
//! session; `GET /` serves the chat page; anything else is 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::WebSocketStream;

use crate::fastcgi::{ParamBlock, ParamTooLarge};
use crate::session::close::CloseReason;
use crate::session::event::header_param;
use crate::session::transport::WebSocket;
use crate::{Admission, Gateway};

const CHAT_PAGE: &str = include_str!("../../examples/chat/index.html");
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve_connection(stream: TcpStream, remote: SocketAddr, gateway: Arc<Gateway>) {
    let service = service_fn(move |req| {
        let gateway = gateway.clone();
        async move { Ok::<_, Infallible>(handle(req, gateway, remote)) }
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

fn handle(req: Request<Incoming>, gateway: Arc<Gateway>, remote: SocketAddr) -> Response<Full<Bytes>> {
    if wants_websocket(req.headers()) {
        return upgrade(req, gateway, remote);
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/" | "/index.html") => respond(StatusCode::OK, "text/html; charset=utf-8", CHAT_PAGE),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// With no allow-list every origin is fine; otherwise the Origin header
/// must be one of the list (a client without one is not a browser page).
fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    origin.is_none_or(|origin| allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)))
}

fn wants_websocket(headers: &HeaderMap) -> bool {
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

fn upgrade(mut req: Request<Incoming>, gateway: Arc<Gateway>, remote: SocketAddr) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "a WebSocket upgrade is a GET\n");
    }
    if req.headers().get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        let mut response = respond(StatusCode::UPGRADE_REQUIRED, "text/plain", "WebSocket version 13 only\n");
        response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, "13".parse().unwrap());
        return response;
    }
    if !origin_allowed(&gateway.config.allowed_origins, req.headers()) {
        gateway.metrics.refused_origin.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return respond(StatusCode::FORBIDDEN, "text/plain", "origin not allowed\n");
    }
    let admission = gateway.admit(remote.ip());
    if admission == Admission::TooFast {
        return respond(StatusCode::TOO_MANY_REQUESTS, "text/plain", "too many connections from your address\n");
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return respond(StatusCode::BAD_REQUEST, "text/plain", "missing Sec-WebSocket-Key\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let params = match connection_params(&gateway, &req, remote) {
        Ok(params) => params,
        Err(err) => return respond(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "text/plain", format!("{err}\n")),
    };
    let upgraded = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgraded.await {
            Ok(io) => {
                let mut ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, Some(gateway.ws_config)).await;
                if admission == Admission::Full {
                    // A close code tells a client to come back later; an HTTP error would not.
                    let reason = CloseReason::ServerFull;
                    let frame = CloseFrame { code: reason.code().into(), reason: reason.text().into() };
                    let _ = ws.close(Some(frame)).await;
                    return;
                }
                // A task of its own, sized to the session alone: this one, with
                // the handshake's state in it, ends here.
                tokio::spawn(crate::session::connection::run(gateway, WebSocket(ws), params));
            }
            Err(err) => tracing::debug!(%err, %remote, "upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Full::default())
        .expect("static response parts are valid")
}

/// The params every event of this connection carries: where the client is
/// and what it asked for. A header the operator set as a static param
/// (say `HTTP_X_API_KEY`) is never overridden by the client.
fn connection_params(
    gateway: &Gateway,
    req: &Request<Incoming>,
    remote: SocketAddr,
) -> Result<ParamBlock, ParamTooLarge> {
    let mut params = ParamBlock::default();
    let uri = req.uri();
    params.push(b"REMOTE_ADDR", remote.ip().to_string().as_bytes())?;
    params.push(b"REMOTE_PORT", remote.port().to_string().as_bytes())?;
    params.push(b"REQUEST_URI", uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/").as_bytes())?;
    params.push(b"DOCUMENT_URI", uri.path().as_bytes())?;
    params.push(b"QUERY_STRING", uri.query().unwrap_or("").as_bytes())?;
    for name in req.headers().keys() {
        let Some(param) = header_param(name.as_str()) else { continue };
        if gateway.events.static_params.get(param.as_bytes()).is_some() {
            continue;
        }
        let separator = if name == header::COOKIE { "; " } else { ", " };
        let values: Vec<&str> = req.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        params.push(param.as_bytes(), values.join(separator).as_bytes())?;
    }
    Ok(params.compact())
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}
