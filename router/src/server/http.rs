//! The JSON HTTP API: `POST /v1/<command>` with a JSON body, answered with
//! a JSON result or a JSON error `{"error":{"code","message"}}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use protocol::cmd::{error_body, Command, CommandError};

use crate::admin::Admin;
use crate::cmd::Apply;
use crate::hub::Hub;
use protocol::token_matches;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A body that takes longer is refused with 408: a caller cannot hold a
/// connection by sending slowly.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest body taken (413 past it): room for a payload at the frame
/// limit in base64 or escaped JSON.
pub fn max_body(max_frame: usize) -> usize {
    max_frame.saturating_mul(2).saturating_add(64 << 10)
}

/// What the HTTP port lets in: the backends' token, the names it answers
/// to, and the operator's page.
pub struct Doors {
    pub token: Option<Arc<str>>,
    /// The Pusher apps whose signed calls `/apps/` takes, token or not.
    pub pusher_apps: protocol::pusher::Apps,
    pub hosts: super::guard::Hosts,
    pub admin: Admin,
}

pub async fn serve_connection(stream: TcpStream, hub: Arc<Hub>, doors: Arc<Doors>) {
    let service = service_fn(move |req| {
        let (hub, doors) = (hub.clone(), doors.clone());
        async move { Ok::<_, Infallible>(handle(req, &hub, &doors).await) }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(err) = result {
        tracing::debug!(%err, "http connection ended with an error");
    }
}

async fn handle(req: Request<Incoming>, hub: &Hub, doors: &Doors) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        return respond(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n"));
    }
    if let Err(refused) = super::guard::check(&doors.hosts, req.method(), req.headers()) {
        hub.metrics.count(crate::metrics::Count::RefusedCrossSite);
        tracing::warn!(%path, code = refused.code, "refused an HTTP call");
        return error(refused.status, refused.code, refused.message.into());
    }
    if path == "/admin" || path.starts_with("/admin/") {
        return operator(req, hub, &doors.admin).await;
    }
    if (path.starts_with("/apps/") || path.starts_with("/users/")) && !doors.pusher_apps.is_empty() {
        return pusher_call(req, hub, &doors.pusher_apps).await;
    }
    if let Some(expected) = doors.token.as_deref() {
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|given| token_matches(expected.as_bytes(), given.trim().as_bytes())) {
            let mut response =
                error(StatusCode::UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <token>".into());
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    if path == "/metrics" {
        return respond(StatusCode::OK, "text/plain; version=0.0.4", Bytes::from(hub.render_metrics()));
    }
    let Some(name) = path.strip_prefix("/v1/") else {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no such path {path}"));
    };
    if !(req.method() == Method::POST || (req.method() == Method::GET && name == "info")) {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use POST".into());
    }
    let body = match read_body(req.into_body(), max_body(hub.max_frame())).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let command = match Command::from_json(name, &body) {
        Ok(command) => command,
        Err(err @ CommandError::UnknownName(_)) => {
            return error(StatusCode::NOT_FOUND, "unknown_command", err.to_string())
        }
        Err(err) => return error(StatusCode::BAD_REQUEST, "bad_request", err.to_string()),
    };
    let (payload, limit) = (command.largest_payload(), hub.push_limit());
    if payload > limit {
        hub.metrics.count(crate::metrics::Count::PushesTooLarge);
        let message = format!("a payload of {payload} bytes is over the frame limit of {limit} bytes (--max-frame)");
        return error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message);
    }
    match command.apply(hub).await {
        Ok(reply) => respond(
            StatusCode::OK,
            "application/json",
            Bytes::from(serde_json::to_vec(&reply).expect("replies serialize")),
        ),
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", err.to_string()),
    }
}

/// A body, within `limit` bytes and the body timeout.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Response<Full<Bytes>>> {
    match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(err)) => Err(error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", err.to_string())),
        Err(_) => {
            Err(error(StatusCode::REQUEST_TIMEOUT, "timeout", format!("the body took over {BODY_READ_TIMEOUT:?}")))
        }
    }
}

/// A call to the Pusher HTTP API: signed by an app's secret instead of
/// the token (see `crate::pusher`).
async fn pusher_call(req: Request<Incoming>, hub: &Hub, apps: &protocol::pusher::Apps) -> Response<Full<Bytes>> {
    let (method, path, query) =
        (req.method().clone(), req.uri().path().to_owned(), req.uri().query().unwrap_or("").to_owned());
    let body = match read_body(req.into_body(), max_body(hub.max_frame())).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let answer = crate::pusher::answer(hub, apps, &method, &path, &query, &body, now).await;
    respond(answer.status, answer.content_type, answer.body)
}

/// The largest body an operator's action takes.
const MAX_ADMIN_BODY: usize = 64 << 10;

/// The operator's page and its JSON, behind `--admin-token` (see `admin`):
/// the page's shell and its login to anyone (they hold nothing), the rest
/// to the token or the session cookie; nothing from outside the router is
/// loaded, and nothing is cached.
async fn operator(req: Request<Incoming>, hub: &Hub, admin: &Admin) -> Response<Full<Bytes>> {
    let (method, path, query) =
        (req.method().clone(), req.uri().path().to_owned(), req.uri().query().unwrap_or("").to_owned());
    let open = admin.has_page()
        && matches!(
            (&method, path.as_str()),
            (&Method::GET, "/admin" | "/admin/") | (&Method::POST, "/admin/api/login")
        );
    if !open && !admin.allows(req.headers()) {
        hub.metrics.count(crate::metrics::Count::RefusedUnauthenticated);
        let why = match admin.access {
            crate::admin::Access::Off => "the operator's page needs the router's --admin-token",
            _ => "log in on the page with the operator's token (--admin-token), or send it as Bearer",
        };
        let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", why.into());
        response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        return response;
    }
    let body = match read_body(req.into_body(), MAX_ADMIN_BODY).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let answer = match (&method, path.as_str()) {
        (&Method::POST, "/admin/api/login") => admin.login(&body),
        _ => admin.answer(hub, &method, &path, &query, &body).await,
    };
    let mut response = respond(answer.status, answer.content_type, answer.body);
    let headers = response.headers_mut();
    if let Some(cookie) = answer.set_cookie.and_then(|cookie| http::HeaderValue::try_from(cookie).ok()) {
        headers.insert(http::header::SET_COOKIE, cookie);
    }
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static("default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:"),
    );
    response
}

fn respond(status: StatusCode, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(body))
        .expect("static response parts are valid")
}

fn error(status: StatusCode, code: &str, message: String) -> Response<Full<Bytes>> {
    respond(status, "application/json", Bytes::from(error_body(code, &message).to_string()))
}
