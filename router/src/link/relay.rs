//! PUBLISH_EXCEPT from a gateway: a client's event that its gateway let
//! through (a Pusher client event on a channel the client is in), to the
//! channel's other members, as a backend's publish goes; a Pusher app's
//! webhook hears of it (`client_event`).

use protocol::cmd::PublishExcept;
use protocol::pusher;
use serde_json::json;

use crate::cmd::Apply;
use crate::hub::{Hub, LinkId};
use crate::metrics::Count;
use crate::store::StoreResult;

pub(super) async fn apply(hub: &Hub, link: LinkId, publish: PublishExcept) -> StoreResult<()> {
    if hub.held_by(link, &publish.except).len() != 1 {
        hub.metrics.count(Count::GatewayFramesRefused);
        tracing::warn!(channel = publish.channel.as_str(), "a relayed event not from one session of its gateway");
        return Ok(());
    }
    hub.metrics.count(Count::ClientEventsRelayed);
    if let Ok(event) = pusher::Envelope::parse(&publish.payload.data) {
        let data = match event.data {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        let mut fields =
            json!({ "event": event.event, "data": data, "socket_id": pusher::socket_id(&publish.except[0]) });
        if let Some(user) = event.user_id {
            fields["user_id"] = json!(user);
        }
        hub.webhooks.channel_event(publish.channel.as_str(), "client_event", fields);
    }
    publish.apply(hub).await.map(drop)
}
