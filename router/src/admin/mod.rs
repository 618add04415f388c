//! The operator's page, on the router's HTTP port under `/admin/`: the
//! cluster at a glance (`page.html`, which polls the JSON below), and two
//! actions, a kick and a gateway's drain, each logged.
//!
//! Its JSON needs `--admin-token`, as a Bearer token (scripts) or as the
//! session cookie the page gets by logging in with it: never the backends'
//! token nor the gateways'. The cookie is `HttpOnly` and `SameSite=Strict`,
//! so no page of another site can use it, and a browser never holds the
//! token itself as ambient credentials (HTTP Basic would). A router
//! without any token, on loopback, serves it to whoever reaches it there,
//! as it serves its API; any other router without `--admin-token` has no
//! page. The port's guard (`server::guard`) refuses cross-site calls.
//!
//! The JSON is summarised, never a dump: counts, the largest channels, a
//! lookup of one session or user, the last five minutes of traffic.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use protocol::cmd::{Command, Kick};
use protocol::{token_matches, SessionId};

use crate::cmd::Apply;
use crate::hub::watch::unix_now;
use crate::hub::Hub;
use crate::metrics::Count;

/// Channels listed at most by one call.
const MAX_CHANNELS: usize = 100;
/// Sessions of one user listed at most.
const MAX_SESSIONS: usize = 100;
/// How long a lookup waits for the gateways to describe their sessions.
const DESCRIBE_WAIT: Duration = Duration::from_secs(1);

/// Who may see the page.
#[derive(Clone)]
pub enum Access {
    /// Whoever bears `--admin-token`, or a session cookie signed with it.
    Token(std::sync::Arc<str>, std::sync::Arc<protocol::signing::Signer>),
    /// Anyone who reaches this loopback-only router without tokens.
    Open,
    /// No one: a router reachable with tokens, but no `--admin-token`.
    Off,
}

/// What the page needs from the router beyond the hub.
pub struct Admin {
    pub access: Access,
    /// The gateways' heartbeat: a gateway silent for three is a problem.
    pub heartbeat: Duration,
    pub store: &'static str,
    pub started: std::time::Instant,
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
    pub set_cookie: Option<String>,
}

fn json_answer(status: StatusCode, value: Value) -> Answer {
    Answer { status, content_type: "application/json", body: Bytes::from(value.to_string()), set_cookie: None }
}

/// The page's session cookie: its name, and how long it lasts.
const COOKIE: &str = "fk_admin";
const SESSION_SECS: u64 = 12 * 3600;

/// A session cookie good until `expires` (seconds since the epoch):
/// `EXPIRES.MAC`, signed with the operator's token.
fn issue_cookie(signer: &protocol::signing::Signer, expires: u64) -> String {
    format!("{expires}.{}", signer.sign(&format!("admin-session:{expires}")))
}

fn cookie_valid(signer: &protocol::signing::Signer, cookie: &str, now: u64) -> bool {
    let Some((expires, mac)) = cookie.split_once('.') else { return false };
    let expires: Option<u64> = expires.parse().ok();
    expires.is_some_and(|expires| expires > now && signer.verify(&format!("admin-session:{expires}"), mac))
}

/// The session cookie's value, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    let cookies = headers.get_all(header::COOKIE).into_iter().filter_map(|v| v.to_str().ok());
    cookies.flat_map(|line| line.split(';')).find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    json_answer(status, protocol::cmd::error_body(code, message))
}

impl Admin {
    /// Whether `headers` bear the operator's token, or a session cookie
    /// that has not expired.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        match &self.access {
            Access::Open => true,
            Access::Off => false,
            Access::Token(token, signer) => {
                let bearer =
                    given_token(headers).is_some_and(|given| token_matches(token.as_bytes(), given.as_bytes()));
                bearer || session_cookie(headers).is_some_and(|cookie| cookie_valid(signer, cookie, unix_now()))
            }
        }
    }

    /// Whether the page's shell and its login are served: not when this
    /// router has no page at all.
    pub fn has_page(&self) -> bool {
        !matches!(self.access, Access::Off)
    }

    /// `POST /admin/api/login` `{"token": T}`: the session cookie, if T is
    /// the operator's token.
    pub fn login(&self, body: &[u8]) -> Answer {
        let given = serde_json::from_slice::<Value>(body).ok().and_then(|v| v["token"].as_str().map(str::to_owned));
        match (&self.access, given) {
            (Access::Token(token, signer), Some(given)) if token_matches(token.as_bytes(), given.as_bytes()) => {
                let cookie = format!(
                    "{COOKIE}={}; Path=/admin; Max-Age={}; HttpOnly; SameSite=Strict",
                    issue_cookie(signer, unix_now() + SESSION_SECS),
                    SESSION_SECS
                );
                Answer { set_cookie: Some(cookie), ..json_answer(StatusCode::OK, json!({"logged_in": true})) }
            }
            (Access::Open, _) => json_answer(StatusCode::OK, json!({"logged_in": true})),
            _ => error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "give {\"token\": the operator's token (--admin-token)}",
            ),
        }
    }

    /// Answers one request under `/admin`; `body` is read for POSTs.
    pub async fn answer(&self, hub: &Hub, method: &Method, path: &str, query: &str, body: &[u8]) -> Answer {
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        match (method, path) {
            (&Method::GET, "/admin" | "/admin/") => Answer {
                status: StatusCode::OK,
                content_type: "text/html; charset=utf-8",
                body: Bytes::from_static(include_bytes!("page.html")),
                set_cookie: None,
            },
            (&Method::GET, "/admin/api/overview") => json_answer(StatusCode::OK, self.overview(hub)),
            (&Method::GET, "/admin/api/channels") => {
                let limit = param("limit").and_then(|l| l.parse().ok()).unwrap_or(20).min(MAX_CHANNELS);
                let view = hub.channels_view(param("q").unwrap_or(""), limit);
                let channels: Vec<Value> =
                    view.top.into_iter().map(|(c, m)| json!({"channel": c, "members": m})).collect();
                json_answer(StatusCode::OK, json!({"count": view.count, "sampled": view.sampled, "channels": channels}))
            }
            (&Method::GET, "/admin/api/sessions") => match sessions(hub, param("id"), param("user")).await {
                Ok(found) => json_answer(StatusCode::OK, json!({"sessions": found})),
                Err(answer) => answer,
            },
            (&Method::POST, "/admin/api/kick") => kick(hub, body).await,
            (&Method::POST, "/admin/api/drain") => drain(hub, body),
            (_, "/admin/api/kick" | "/admin/api/drain") => {
                error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use POST")
            }
            _ => error(StatusCode::NOT_FOUND, "not_found", &format!("no such path {path}")),
        }
    }

    fn overview(&self, hub: &Hub) -> Value {
        let gateways = hub.gateways_view();
        let view = hub.channels_view("", 10);
        let top: Vec<Value> = view.top.into_iter().map(|(c, m)| json!({"channel": c, "members": m})).collect();
        json!({
            "now": unix_now(),
            "router": {
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": self.started.elapsed().as_secs(),
                "store": self.store,
            },
            "totals": {
                "sessions": gateways.iter().map(|g| g.sessions).sum::<usize>(),
                "gateways": gateways.len(),
                "channels": view.count,
            },
            "routers": hub.routers(),
            "problems": hub.problems(self.heartbeat * 3),
            "gateways": gateways,
            "cut_offs": hub.cut_offs(),
            "traffic": hub.traffic(),
            "channels": top,
            "channels_sampled": view.sampled,
        })
    }
}

/// `Authorization: Bearer TOKEN`.
fn given_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// One session by id, or a user's sessions: where each is, its user and channels.
async fn sessions(hub: &Hub, id: Option<&str>, user: Option<&str>) -> Result<Vec<Value>, Answer> {
    let unavailable =
        |err: crate::store::StoreError| error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &err.to_string());
    let ids: Vec<SessionId> = match (id, user) {
        (Some(id), _) => vec![SessionId::parse(id.trim().as_bytes())
            .map_err(|err| error(StatusCode::BAD_REQUEST, "bad_request", &err.to_string()))?],
        (None, Some(user)) => {
            let mut ids = hub.store().user_sessions(user).await.map_err(unavailable)?;
            ids.sort();
            ids.truncate(MAX_SESSIONS);
            ids
        }
        (None, None) => return Err(error(StatusCode::BAD_REQUEST, "bad_request", "give id or user")),
    };
    let users = hub.store().session_users(&ids).await.map_err(unavailable)?;
    let channels = hub.store().sessions_channels(&ids).await.map_err(unavailable)?;
    let described = hub.describe(&ids, DESCRIBE_WAIT).await;
    Ok(ids
        .iter()
        .zip(users)
        .zip(channels)
        .zip(described)
        .map(|(((id, user), mut channels), described)| {
            channels.sort();
            let mut found = json!({"session": id, "gateway": hub.holder_key(id), "user": user, "channels": channels});
            if let Some(described) = described {
                let meta: serde_json::Map<String, Value> =
                    described.meta.into_iter().map(|(n, v)| (n, Value::String(v))).collect();
                found["age_s"] = json!(described.age_s);
                found["meta"] = Value::Object(meta);
                found["remote"] = json!(described.remote);
            }
            found
        })
        .collect())
}

async fn kick(hub: &Hub, body: &[u8]) -> Answer {
    let session = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| SessionId::parse(v["session"].as_str()?.as_bytes()).ok());
    let Some(session) = session else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "give {\"session\": ID}");
    };
    hub.metrics.count(Count::OperatorActions);
    tracing::warn!(%session, "operator: kicking a session");
    match Command::Kick(Kick { sessions: vec![session] }).apply(hub).await {
        Ok(reply) => json_answer(StatusCode::OK, serde_json::to_value(reply).expect("replies serialize")),
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &err.to_string()),
    }
}

fn drain(hub: &Hub, body: &[u8]) -> Answer {
    let gateway = serde_json::from_slice::<Value>(body).ok().and_then(|v| v["gateway"].as_str().map(str::to_owned));
    let Some(gateway) = gateway else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "give {\"gateway\": \"SERVER:WORKER\"}");
    };
    hub.metrics.count(Count::OperatorActions);
    tracing::warn!(gateway, "operator: draining a gateway");
    match hub.drain(&gateway) {
        true => json_answer(StatusCode::OK, json!({"draining": gateway})),
        false => error(StatusCode::NOT_FOUND, "not_found", &format!("no gateway {gateway} is linked")),
    }
}

/// A traffic point a second, for the page's charts.
pub async fn sample(hub: std::sync::Arc<Hub>, shutdown: runtime::Shutdown) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = ticks.tick() => hub.sample_traffic(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        headers
    }

    fn admin(access: Access) -> Admin {
        Admin { access, heartbeat: Duration::from_secs(2), store: "memory", started: std::time::Instant::now() }
    }

    fn token_access(token: &str) -> Access {
        Access::Token(token.into(), std::sync::Arc::new(protocol::signing::Signer::new(Some(token))))
    }

    #[test]
    fn the_token_comes_as_bearer_or_as_a_cookie_signed_with_it_and_nothing_else() {
        use base64::Engine as _;
        let admin = admin(token_access("s3cret"));
        let auth = |value: &str| headers(header::AUTHORIZATION, value);
        assert!(admin.allows(&auth("Bearer s3cret")));
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("anyone:s3cret"));
        for wrong in ["Bearer s3cre", "bearer s3cret", "s3cret", "Basic !!!", &basic] {
            assert!(!admin.allows(&auth(wrong)), "{wrong}: Basic credentials are ambient, never taken");
        }
        assert!(!admin.allows(&HeaderMap::new()));

        let logged_in = admin.login(br#"{"token":"s3cret"}"#);
        let set = logged_in.set_cookie.expect("a cookie");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/admin"), "{set}");
        let value = set.split(';').next().unwrap();
        assert!(admin.allows(&headers(header::COOKIE, &format!("theme=dark; {value}"))));
        assert_eq!(admin.login(br#"{"token":"s3cre"}"#).status, StatusCode::UNAUTHORIZED);
        let signer = protocol::signing::Signer::new(Some("s3cret"));
        let expired = issue_cookie(&signer, unix_now() - 1);
        assert!(!admin.allows(&headers(header::COOKIE, &format!("{COOKIE}={expired}"))), "expired");
        let later = unix_now() + 99_999;
        let forged = format!("{later}.{}", &issue_cookie(&signer, unix_now() + 60)[11..]);
        assert!(!admin.allows(&headers(header::COOKIE, &format!("{COOKIE}={forged}"))), "its expiry changed");
        let other = issue_cookie(&protocol::signing::Signer::new(Some("other")), unix_now() + 60);
        assert!(!admin.allows(&headers(header::COOKIE, &format!("{COOKIE}={other}"))), "another token's");
        assert!(!Admin { access: Access::Off, ..admin }.allows(&auth("Bearer s3cret")));
    }
}
