use protocol::cmd::Payload;
use protocol::SessionId;
use serde_json::json;

use crate::app::{App, AppError};
use crate::cgi::Response;

/// The offline (EVENT=3) and online (EVENT=4) events of a resumable
/// session: the user stays logged in and in its channels, and everyone
/// hears whether it is reachable.
pub async fn apply(app: &App, session: SessionId, online: bool) -> Result<Response, AppError> {
    if let Some(name) = app.users.get(session).await? {
        let kind = if online { "online" } else { "offline" };
        let notice = json!({"type": kind, "name": name, "id": session});
        app.router.broadcast(Payload::text(notice.to_string())).await?;
    }
    Ok(Response::none())
}
