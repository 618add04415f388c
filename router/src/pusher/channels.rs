//! `GET /apps/{id}/channels` and `/channels/{name}`: the occupied channels
//! and what each holds, from the routes (subscriptions: what every gateway
//! said it holds) and, for presence channels, the store (users).

use serde_json::{json, Map, Value};

use protocol::pusher::{self, ApiRefusal, App, ChannelKind};

use super::{refused, ApiResult};
use crate::hub::Hub;

/// The attributes `info` asks for, checked against what the channel can say.
fn asked(info: Option<&str>, presence: bool) -> Result<(bool, bool), ApiRefusal> {
    let mut wants = (false, false);
    for attribute in info.unwrap_or("").split(',').filter(|a| !a.is_empty()) {
        match attribute {
            "subscription_count" => wants.0 = true,
            "user_count" if presence => wants.1 = true,
            "user_count" => return Err(refused(400, "user_count is for presence channels only")),
            other => return Err(refused(400, format!("unknown info attribute {other:?}"))),
        }
    }
    Ok(wants)
}

/// What `asked` (Pusher's `info`) wants of one channel.
pub(super) async fn info(hub: &Hub, app: &App, channel: &str, asked_for: &str) -> Result<Value, ApiRefusal> {
    let presence = ChannelKind::of(channel) == ChannelKind::Presence;
    let (subscriptions, users) = asked(Some(asked_for), presence)?;
    let mut info = Map::new();
    if subscriptions {
        info.insert("subscription_count".into(), json!(subscription_count(hub, app, channel)));
    }
    if users {
        info.insert("user_count".into(), json!(super::users::users(hub, app, channel).await?.len()));
    }
    Ok(Value::Object(info))
}

fn subscription_count(hub: &Hub, app: &App, channel: &str) -> usize {
    hub.routed_members(&pusher::fk_name(&app.id, channel))
}

pub async fn list(hub: &Hub, app: &App, filter: &str, info: Option<&str>) -> ApiResult {
    let (subscriptions, users) = asked(info, filter.starts_with("presence-"))?;
    let prefix = pusher::fk_prefix(&app.id);
    let mut channels = Map::new();
    for (name, members) in hub.routed_channels(&format!("{prefix}{filter}")) {
        let channel = name[prefix.len()..].to_owned();
        let mut info = Map::new();
        if subscriptions {
            info.insert("subscription_count".into(), json!(members));
        }
        if users {
            info.insert("user_count".into(), json!(super::users::users(hub, app, &channel).await?.len()));
        }
        channels.insert(channel, Value::Object(info));
    }
    Ok(json!({ "channels": channels }))
}

pub async fn one(hub: &Hub, app: &App, channel: &str, asked_for: Option<&str>) -> ApiResult {
    if !pusher::valid_channel(channel) {
        return Err(refused(400, format!("Invalid channel name {channel:?}")));
    }
    let mut answer = info(hub, app, channel, asked_for.unwrap_or("")).await?;
    answer["occupied"] = json!(subscription_count(hub, app, channel) > 0);
    Ok(answer)
}
