use protocol::cmd::Payload;
use protocol::SessionId;
use serde_json::json;

use crate::app::{App, AppError};
use crate::cgi::Response;

/// The close event (EVENT=2): forget the user and tell everyone.
pub async fn apply(app: &App, session: SessionId) -> Result<Response, AppError> {
    if let Some(name) = app.users.remove(session).await? {
        let goodbye = json!({"type": "close", "name": name, "id": session});
        app.router.broadcast(Payload::text(goodbye.to_string())).await?;
    }
    Ok(Response::none())
}
