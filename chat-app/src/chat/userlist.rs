use serde_json::json;

use super::{App, ChatError, Reply};

/// `{"type":"userlist"}`: answers `{"type":"list","list":[{name,id}..]}`.
pub async fn apply(app: &App) -> Result<Reply, ChatError> {
    let list = app.users.list().await?;
    Ok(Reply::json(json!({"type": "list", "list": list})))
}
