use protocol::cmd::{Online, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Online {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let sessions = hub.online(&self.sessions);
        let mut users = Vec::new();
        for user in self.users {
            if !hub.online(&hub.store().user_sessions(&user).await?).is_empty() {
                users.push(user);
            }
        }
        Ok(Reply::Online { sessions, users })
    }
}
