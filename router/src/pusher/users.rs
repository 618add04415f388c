//! `GET /apps/{id}/channels/{name}/users` (a presence channel's users) and
//! `POST /apps/{id}/users/{user}/terminate_connections` (every connection
//! of a user signed in or in a presence channel, closed).

use bytes::Bytes;
use serde_json::json;

use protocol::pusher::{self, ApiRefusal, App, ChannelKind};
use protocol::FrameKind;

use super::{refused, unavailable, ApiResult};
use crate::hub::Hub;

/// Members read for a channel's users at most: a page at a time.
const MAX_MEMBERS_READ: usize = 100_000;
const PAGE: usize = 1000;

/// A presence channel's users, each once, in the order of their first
/// member (a user with two connections is one user).
pub(super) async fn users(hub: &Hub, app: &App, channel: &str) -> Result<Vec<String>, ApiRefusal> {
    let name = pusher::fk_name(&app.id, channel);
    let (mut users, mut seen, mut after, mut read) = (Vec::new(), std::collections::HashSet::new(), None, 0);
    loop {
        let page = crate::presence::list(hub, &name, after, PAGE, usize::MAX).await.map_err(unavailable)?;
        read += page.members.len();
        for member in page.members {
            if seen.insert(member.user.clone()) {
                users.push(member.user);
            }
        }
        match page.next {
            Some(next) if read < MAX_MEMBERS_READ => after = Some(next),
            _ => return Ok(users),
        }
    }
}

pub async fn of_channel(hub: &Hub, app: &App, channel: &str) -> ApiResult {
    if !pusher::valid_channel(channel) || ChannelKind::of(channel) != ChannelKind::Presence {
        return Err(refused(400, "users are listed for presence channels only"));
    }
    let users = users(hub, app, channel).await?;
    Ok(json!({ "users": users.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>() }))
}

pub async fn terminate(hub: &Hub, app: &App, user: &str) -> ApiResult {
    let sessions = hub.store().user_sessions(&pusher::fk_name(&app.id, user)).await.map_err(unavailable)?;
    hub.deliver(FrameKind::Kick, &sessions, Bytes::new(), false);
    Ok(json!({}))
}
