use serde_json::json;

use crate::app::{App, AppError};
use crate::cgi::Response;

/// `{"type":"userlist"}`: answers `{"type":"list","list":[{name,id}..]}`.
pub async fn apply(app: &App) -> Result<Response, AppError> {
    let list = app.users.list().await?;
    Ok(Response::json(json!({"type": "list", "list": list})))
}
