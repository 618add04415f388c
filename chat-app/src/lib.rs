//! The chat app: a stateless FastCGI backend on tokio-fastcgi. Every
//! request names its session; whatever must outlive a request lives in the
//! user store or the router.

pub mod chat;
pub mod config;
pub mod queue;
pub mod request;
pub mod talk;
pub mod users;

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use runtime::Shutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_fastcgi::{RequestResult, Requests};

use chat::{App, ChatError, Reply};
pub use config::Config;
use protocol::RouterClient;
use users::Users;

/// FastCGI connections served at once (each runs one request at a time).
const MAX_CONNECTIONS: usize = 4096;

pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    runtime::no_empty_secrets(&[
        ("--router-token", &config.router_token),
        ("--cookie-secret", &config.cookie_secret),
        ("--operator-token", &config.operator_token),
    ])?;
    let store = |name: &str| -> anyhow::Result<Users> {
        Ok(match &config.redis {
            Some(url) => {
                let conn = runtime::redis_manager(url).with_context(|| format!("bad redis url {url}"))?;
                Users::Redis { conn, key: format!("{}{name}", config.redis_prefix) }
            }
            None => Users::Memory(Mutex::new(HashMap::new())),
        })
    };
    let router = RouterClient::with_token(config.router.clone(), config.router_token.clone());
    let queue_store = match &config.redis {
        Some(url) => queue::QueueStore::Redis {
            conn: runtime::redis_manager(url).with_context(|| format!("bad redis url {url}"))?,
            prefix: format!("{}queue:", config.redis_prefix),
        },
        None => queue::QueueStore::Memory(Default::default()),
    };
    let queue = queue::Queue::new(
        queue_store,
        config.queue_capacity,
        config.cookie_secret.as_deref(),
        config.operator_token.clone(),
    );
    let app = Arc::new(App { users: store("users")?, talkers: store("talkers")?, queue, router });
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("bind {}", config.listen))?;
    tracing::info!(listen = %config.listen, router = %config.router, "chat-app ready");
    runtime::accept_loop(listener, MAX_CONNECTIONS, shutdown, move |stream, _| serve_connection(stream, app.clone()))
        .await;
    Ok(())
}

/// tokio-fastcgi runs one request at a time per connection; the gateway
/// opens as many connections as it needs concurrency.
async fn serve_connection(mut stream: TcpStream, app: Arc<App>) {
    let mut requests = Requests::from_split_socket(stream.split(), 1, 1);
    loop {
        let request = match requests.next().await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(err) => return tracing::warn!(%err, "bad FastCGI request; closing connection"),
        };
        let app = app.clone();
        let processed = request
            .process(|request| async move {
                let caller = request::caller(|name| request.get_str_param(name));
                let mut body = Vec::new();
                // A talker (it came with a username header) speaks the talk
                // protocol on binary frames; everything else is chat's JSON,
                // raw TCP clients' binary frames included.
                let binary = request.get_str_param("CONTENT_TYPE") == Some("application/octet-stream");
                let username = request.get_str_param("HTTP_USERNAME");
                let talking = binary && username.is_some();
                let path = request.get_str_param("DOCUMENT_URI").unwrap_or_default().to_owned();
                let output = match (caller, request.get_stdin().read_to_end(&mut body)) {
                    // Plain HTTP (no session) to the queue's API.
                    (Err(_), Ok(_)) if path.starts_with("/api/v1/game/") => {
                        let param = |name: &str| request.get_str_param(name).map(str::to_owned);
                        Output::Cgi(app.queue.http(&app, &path, &body, param).await)
                    }
                    (Ok(caller), Ok(_)) if path.starts_with("/ws/check") => {
                        let param = |name: &str| request.get_str_param(name).map(str::to_owned);
                        Output::Cgi(app.queue.check(&app, caller.session, caller.event, param, &body).await)
                    }
                    (Ok(caller), Ok(_)) if talking => Output::Binary(talk::handle(&app, caller.session, &body).await),
                    (Ok(caller), Ok(_)) => {
                        if let Err(err) = talk::on_event(&app, caller.session, caller.event, username).await {
                            tracing::warn!(?err, "talk bookkeeping failed");
                        }
                        Output::Json(chat::handle(&app, &caller, &body).await)
                    }
                    (Err(reason), _) => Output::Json(ChatError::new(400, reason).into_reply()),
                    (_, Err(err)) => Output::Json(ChatError::new(400, format!("unreadable body: {err}")).into_reply()),
                };
                match request.get_stdout().write(&render(&output)).await {
                    Ok(_) => RequestResult::Complete(0),
                    Err(_) => RequestResult::Complete(1),
                }
            })
            .await;
        if let Err(err) = processed {
            return tracing::warn!(%err, "FastCGI request failed; closing connection");
        }
    }
}

/// What one request answers: chat's JSON, or a Talk message for a binary
/// frame (sent back as a binary frame; an empty one sends nothing).
enum Output {
    Json(Reply),
    Binary(talk::Talk),
    Cgi(queue::Answer),
}

/// A CGI response: Status, Content-Type, then the body (if any).
fn render(output: &Output) -> Vec<u8> {
    match output {
        Output::Json(reply) => {
            let mut out = format!("Status: {}\r\nContent-Type: application/json\r\n\r\n", reply.status).into_bytes();
            if let Some(body) = &reply.body {
                out.extend_from_slice(body.to_string().as_bytes());
            }
            out
        }
        Output::Cgi(answer) => {
            let mut out = format!("Status: {}\r\n", answer.status);
            for (name, value) in &answer.headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str("Content-Type: application/json\r\n\r\n");
            let mut out = out.into_bytes();
            if let Some(body) = &answer.body {
                out.extend_from_slice(body.to_string().as_bytes());
            }
            out
        }
        Output::Binary(talk) => {
            let mut out = b"Content-Type: application/octet-stream\r\n\r\n".to_vec();
            if *talk != talk::Talk::default() {
                out.extend_from_slice(&prost::Message::encode_to_vec(talk));
            }
            out
        }
    }
}
