//! One FastCGI request to the protocol that takes it: the queue's plain
//! HTTP API and its `/ws/check` sessions, the talk protocol (binary frames
//! of a session that came with a username), or chat (everything else).

use std::io::Read;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_fastcgi::{RequestResult, Requests};

use crate::app::{App, AppError};
use crate::cgi::Response;
use crate::{chat, request, talk};

/// tokio-fastcgi runs one request at a time per connection; the gateway
/// opens as many connections as it needs concurrency.
pub async fn serve_connection(mut stream: TcpStream, app: Arc<App>) {
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
                let param = |name: &str| request.get_str_param(name).map(str::to_owned);
                let mut body = Vec::new();
                let response = match request.get_stdin().read_to_end(&mut body) {
                    Ok(_) => dispatch(&app, &param, &body).await,
                    Err(err) => chat::error_response(AppError::new(400, format!("unreadable body: {err}"))),
                };
                match request.get_stdout().write(&response.render()).await {
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

/// Which protocol answers a request, by its path and params.
async fn dispatch(app: &App, param: &impl Fn(&str) -> Option<String>, body: &[u8]) -> Response {
    let caller = request::caller(param);
    let path = param("DOCUMENT_URI").unwrap_or_default();
    // A talker (it came with a username header) speaks the talk protocol on
    // binary frames; everything else is chat's JSON, raw TCP clients'
    // binary frames included.
    let binary = param("CONTENT_TYPE").as_deref() == Some("application/octet-stream");
    let username = param("HTTP_USERNAME");
    match caller {
        // Plain HTTP (no session) to the queue's API.
        Err(_) if path.starts_with("/api/v1/game/") => app.queue.http(&app.router, &path, body, param).await,
        Err(reason) => chat::error_response(AppError::new(400, reason)),
        Ok(caller) if path.starts_with("/ws/check") => {
            app.queue.check(&app.router, caller.session, caller.event, param, body).await
        }
        Ok(caller) if binary && username.is_some() => talk::handle(app, caller.session, body).await,
        Ok(caller) => {
            if let Err(err) = talk::on_event(app, caller.session, caller.event, username.as_deref()).await {
                tracing::warn!(?err, "talk bookkeeping failed");
            }
            chat::handle(app, &caller, body).await
        }
    }
}
