use protocol::cmd::Payload;
use protocol::SessionId;
use serde::Deserialize;
use serde_json::json;

use super::userlist;
use crate::app::{App, AppError};
use crate::cgi::Response;
use crate::text::{escape, MAX_NAME_CHARS};

/// `{"type":"login","name":N}`: tells everyone, answers with who is online.
/// A second login renames the session.
#[derive(Deserialize)]
pub struct Login {
    name: String,
}

impl Login {
    pub async fn apply(self, app: &App, session: SessionId) -> Result<Response, AppError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(AppError::new(400, format!("a name is 1 to {MAX_NAME_CHARS} characters")));
        }
        let name = escape(name);
        app.users.set(session, &name).await?;
        let announce = json!({"type": "login", "name": name, "id": session});
        app.router.broadcast(Payload::text(announce.to_string())).await?;
        userlist::apply(app).await
    }
}
