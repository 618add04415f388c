use protocol::cmd::Payload;
use protocol::SessionId;
use serde_json::json;

use super::{App, ChatError, Reply};

/// The close event (EVENT=2): forget the user and tell everyone.
pub async fn apply(app: &App, session: SessionId) -> Result<Reply, ChatError> {
    if let Some(name) = app.users.remove(session).await? {
        let goodbye = json!({"type": "close", "name": name, "id": session});
        app.router.broadcast(Payload::text(goodbye.to_string())).await?;
    }
    Ok(Reply::none())
}
