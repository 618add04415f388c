//! The Pusher HTTP API, `/apps/{id}/...` (and `/users/...`), as the Pusher server SDKs call
//! it. Each call is checked as Pusher checks one (the app's key, a
//! timestamp within 600 s, the body's MD5, the signature:
//! `protocol::pusher::ApiRequest`), then applied as fk's own commands: an
//! event is a publish of its Pusher envelope, built once per channel, so
//! it fans out as any publish does.

pub mod cache;
mod channels;
mod events;
mod users;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;

use protocol::pusher::{ApiRefusal, ApiRequest, Apps};

use crate::hub::Hub;
use crate::metrics::Count;
use crate::store::StoreError;

/// What a call gets: JSON on success, Pusher's plain text on a refusal.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
}

type ApiResult = Result<Value, ApiRefusal>;

fn refused(status: u16, message: impl Into<String>) -> ApiRefusal {
    ApiRefusal { status, message: message.into() }
}

fn unavailable(err: StoreError) -> ApiRefusal {
    refused(503, format!("{err}"))
}

/// Answers one call to `path` (it begins `/apps/` or `/users/`), signed as of `now`
/// (seconds since the epoch).
pub async fn answer(hub: &Hub, apps: &Apps, method: &Method, path: &str, query: &str, body: &[u8], now: u64) -> Answer {
    let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let param = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    // The PyPI SDK ends a user's connections at `/users/...`, the app
    // named by its key alone.
    let (app_id, call) = match path.strip_prefix("/apps/") {
        Some(rest) => rest.split_once('/').unwrap_or((rest, "")),
        None => {
            let app = param("auth_key").and_then(|key| apps.by_key(key));
            (app.map_or("", |app| app.id.as_str()), path.trim_start_matches('/'))
        }
    };
    let request = ApiRequest { method: method.as_str(), path, query: &query, body };
    let result = match request.verify(apps, app_id, now) {
        Err(refusal) => Err(refusal),
        Ok(app) => {
            let segments: Vec<&str> = call.split('/').collect();
            match (method, segments.as_slice()) {
                (&Method::POST, ["events"]) => events::trigger(hub, app, body).await,
                (&Method::POST, ["batch_events"]) => events::batch(hub, app, body).await,
                (&Method::GET, ["channels"]) => {
                    channels::list(hub, app, param("filter_by_prefix").unwrap_or(""), param("info")).await
                }
                (&Method::GET, ["channels", channel]) => channels::one(hub, app, channel, param("info")).await,
                (&Method::GET, ["channels", channel, "users"]) => users::of_channel(hub, app, channel).await,
                (&Method::POST, ["users", user, "terminate_connections"]) => users::terminate(hub, app, user).await,
                _ => Err(refused(404, format!("no such call: {method} {path}"))),
            }
        }
    };
    match result {
        Ok(value) => {
            hub.metrics.count(Count::PusherApiCalls);
            Answer { status: StatusCode::OK, content_type: "application/json", body: Bytes::from(value.to_string()) }
        }
        Err(ApiRefusal { status, message }) => {
            hub.metrics.count(Count::PusherApiRefused);
            tracing::info!(status, %message, %path, "a Pusher API call refused");
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            Answer { status, content_type: "text/plain", body: Bytes::from(format!("{message}\n")) }
        }
    }
}
