//! The game-login queue: accounts and logins over plain HTTP (through the
//! gateway's --http-route, or nginx), then a WebSocket (`/ws/check`) that
//! admits a player to a region while it has room and otherwise queues
//! them, telling everyone in line their place whenever the line moves.
//! Codes: 0 ok, 1 wrong password, 2 name taken, 3 queued, 99 not logged
//! in, 400 bad request, 404 unknown, 500 internal.

pub mod auth;
mod store;

use std::time::{SystemTime, UNIX_EPOCH};

use protocol::cmd::Payload;
use protocol::SessionId;
use serde::Deserialize;
use serde_json::{json, Value};

use protocol::token_matches;
use runtime::rate::KeyedRate;

use protocol::RouterClient;

use crate::cgi::Response;
use crate::request::Event;
use auth::{cookie_value, hash_password, password_matches, CookieSigner, COOKIE, COOKIE_SECONDS};
pub use store::QueueStore;
use store::{Entered, Freed};

/// The games and their regions, with the servers an admitted player gets.
const GAMES: &[(&str, &[&str])] = &[("demo", &["eu", "us"])];

/// An answer of the queue's codes: `{"code":N,"message":..}`, with the
/// HTTP status the code is, or 200 for the queue's own codes.
fn code(code: u16, message: &str) -> Response {
    let status = if code >= 400 { code } else { 200 };
    Response::status_json(status, json!({"code": code, "message": message}))
}

pub struct Queue {
    store: QueueStore,
    signer: CookieSigner,
    capacity: usize,
    /// The operator's secret for `offline/<uid>`; without one, refused.
    operator_token: Option<String>,
    /// Login attempts per name and per client address.
    logins_per_name: KeyedRate<String>,
    logins_per_address: KeyedRate<String>,
}

/// Login attempts: per name (guessing one password) and per address
/// (guessing many names), a bucket each.
const LOGINS_PER_NAME: (f32, f32) = (5.0 / 60.0, 10.0);
const LOGINS_PER_ADDRESS: (f32, f32) = (30.0 / 60.0, 60.0);

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct Check {
    game_name: String,
    region: String,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn servers(region: &str) -> Value {
    let base = if region == "eu" { 7000 } else { 7100 };
    json!({"code": 0, "gate_servers": [{"host": "127.0.0.1", "port": base + 1}], "chat_servers": [{"host": "127.0.0.1", "port": base + 2}]})
}

impl Queue {
    pub fn new(
        store: QueueStore,
        capacity: usize,
        cookie_secret: Option<&str>,
        operator_token: Option<String>,
    ) -> Queue {
        Queue {
            store,
            signer: CookieSigner::new(cookie_secret),
            capacity: capacity.max(1),
            operator_token,
            logins_per_name: KeyedRate::new(LOGINS_PER_NAME.0, LOGINS_PER_NAME.1),
            logins_per_address: KeyedRate::new(LOGINS_PER_ADDRESS.0, LOGINS_PER_ADDRESS.1),
        }
    }

    /// Whether the request bears the operator's token.
    fn bears_operator_token(&self, param: &impl Fn(&str) -> Option<String>) -> bool {
        let given = param("HTTP_AUTHORIZATION");
        let given = given.as_deref().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("").trim();
        self.operator_token.as_deref().is_some_and(|token| token_matches(token.as_bytes(), given.as_bytes()))
    }

    /// The answer when the store fails.
    fn unavailable(err: redis::RedisError) -> Response {
        tracing::error!(%err, "queue store failed");
        code(500, "try again later")
    }

    /// `POST /api/v1/game/{register,login,logout,offline/<uid>}`; `param`
    /// reads the request's params (headers, client address).
    pub async fn http(
        &self,
        router: &RouterClient,
        path: &str,
        body: &[u8],
        param: impl Fn(&str) -> Option<String>,
    ) -> Response {
        let route = path.trim_start_matches("/api/v1/game/");
        // Over HTTPS (at a TLS edge that says so), the cookie is Secure.
        let https =
            param("HTTPS").as_deref() == Some("on") || param("HTTP_X_FORWARDED_PROTO").as_deref() == Some("https");
        let cookie_attributes = |max_age: u64| {
            let secure = if https { "; Secure" } else { "" };
            format!("Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
        };
        if let Some(uid) = route.strip_prefix("offline/") {
            if !self.bears_operator_token(&param) {
                return code(401, "offline/<uid> is an operator's call: send Authorization: Bearer <operator token>");
            }
            return match uid.parse() {
                Ok(uid) => self.offline(router, uid).await,
                Err(_) => code(400, "offline/<uid> takes a number"),
            };
        }
        if route == "logout" {
            let mut answer = Response::json(json!({"code": 0}));
            answer.headers.push(("Set-Cookie".into(), format!("{COOKIE}=; {}", cookie_attributes(0))));
            return answer;
        }
        let Ok(credentials) = serde_json::from_slice::<Credentials>(body) else {
            return code(400, "send {\"username\":..,\"password\":..}");
        };
        let (name, password) = (credentials.username.trim(), credentials.password);
        if name.is_empty() || name.chars().count() > 32 || password.is_empty() || password.len() > 128 {
            return code(400, "a username is 1 to 32 characters, a password 1 to 128 bytes");
        }
        match route {
            "register" => match self.store.create_account(name, &hash_password(&password)).await {
                Ok(Some(uid)) => Response::json(json!({"code": 0, "uid": uid})),
                Ok(None) => code(2, "username taken"),
                Err(err) => Queue::unavailable(err),
            },
            "login" if !self.login_allowed(name, param("REMOTE_ADDR").unwrap_or_default()) => {
                code(429, "too many login attempts; try again in a minute")
            }
            "login" => match self.store.account(name).await {
                Ok(Some((uid, hash))) if password_matches(&password, &hash) => {
                    let mut answer = Response::json(json!({"code": 0, "uid": uid}));
                    let cookie = self.signer.sign(uid, now());
                    let attributes = cookie_attributes(COOKIE_SECONDS);
                    answer.headers.push(("Set-Cookie".into(), format!("{COOKIE}={cookie}; {attributes}")));
                    answer
                }
                Ok(_) => code(1, "wrong username or password"),
                Err(err) => Queue::unavailable(err),
            },
            _ => code(404, "no such call"),
        }
    }

    /// A login attempt counts against its name and its address.
    fn login_allowed(&self, name: &str, address: String) -> bool {
        let by_name = self.logins_per_name.allow(name.to_lowercase());
        let by_address = self.logins_per_address.allow(address);
        by_name && by_address
    }

    /// An event of a `/ws/check` session. The connect event needs the login
    /// cookie; the uid is then kept as session meta (`META_UID`).
    pub async fn check(
        &self,
        router: &RouterClient,
        session: SessionId,
        event: Event,
        param: impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Response {
        match event {
            Event::Connect => {
                let uid =
                    param("HTTP_COOKIE").as_deref().and_then(cookie_value).and_then(|c| self.signer.verify(c, now()));
                match uid {
                    Some(uid) => Response::none().with_header("X-Meta-Uid", uid.to_string()),
                    None => Response::status_json(401, json!({"code": 99, "message": "log in first"})),
                }
            }
            Event::Close => {
                self.leave_line(router, session).await;
                Response::none()
            }
            // A place in line is kept while its client resumes.
            Event::Offline | Event::Online => Response::none(),
            Event::Message => {
                let Some(uid) = param("META_UID").and_then(|u| u.parse().ok()) else {
                    return code(99, "log in first");
                };
                let Ok(check) = serde_json::from_slice::<Check>(body) else {
                    return code(400, "send {\"game_name\":..,\"region\":..}");
                };
                let known = GAMES
                    .iter()
                    .any(|(game, regions)| *game == check.game_name && regions.contains(&check.region.as_str()));
                if !known {
                    return code(404, "unknown game or region");
                }
                self.enter(session, uid, &check.region).await
            }
        }
    }

    async fn enter(&self, session: SessionId, uid: u64, region: &str) -> Response {
        match self.store.enter(session, uid, region, self.capacity).await {
            Ok(Entered::Admitted) => Response::json(servers(region)),
            Ok(Entered::Queued(index)) => Response::json(json!({"code": 3, "front_users": front_users(index)})),
            Err(err) => Queue::unavailable(err),
        }
    }

    /// A session that leaves the line moves everyone behind it up.
    async fn leave_line(&self, router: &RouterClient, session: SessionId) {
        match self.store.leave_line(session).await {
            Ok(line) => tell_positions(router, &line).await,
            Err(err) => tracing::error!(%err, %session, "could not take a session out of the line"),
        }
    }

    /// The game says `uid` went offline: its slot frees up and the head of
    /// that region's line is let in.
    async fn offline(&self, router: &RouterClient, uid: u64) -> Response {
        match self.store.offline(uid).await {
            Ok(Some(Freed { region, admitted, line })) => {
                if let Some(session) = admitted {
                    push(router, session, servers(&region)).await;
                }
                tell_positions(router, &line).await;
                Response::json(json!({"code": 0}))
            }
            Ok(None) => code(404, "that player is not in a game"),
            Err(err) => Queue::unavailable(err),
        }
    }
}

async fn push(router: &RouterClient, session: SessionId, message: Value) {
    if let Err(err) = router.send(vec![session], Payload::text(message.to_string())).await {
        tracing::warn!(%err, %session, "queue push failed");
    }
}

/// How many players must leave before the one at `index` in line gets in:
/// the first in line waits for one slot to free.
fn front_users(index: usize) -> usize {
    index + 1
}

/// Tells everyone in a line their place in it.
async fn tell_positions(router: &RouterClient, line: &[SessionId]) {
    for (index, session) in line.iter().enumerate() {
        push(router, *session, json!({"code": 3, "front_users": front_users(index)})).await;
    }
}
