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
    // A client event: from one session the gateway holds, to a Pusher
    // app's private or presence channel, never to any other channel.
    let to_a_client_channel = pusher::split_fk_channel(publish.channel.as_str())
        .is_some_and(|(_, channel)| pusher::ChannelKind::of(channel).is_authorized());
    if hub.held_by(link, &publish.except).len() != 1 || !to_a_client_channel {
        hub.metrics.count(Count::GatewayFramesRefused);
        let why = "a relayed event refused: not from one session of its gateway, or not to a Pusher app's private or presence channel";
        tracing::warn!(channel = publish.channel.as_str(), why);
        return Ok(());
    }
    hub.metrics.count(Count::ClientEventsRelayed);
    if let Ok(event) = pusher::Envelope::parse(&publish.payload.data) {
        let data = pusher::data_text(&event.data);
        let mut fields =
            json!({ "event": event.event, "data": data, "socket_id": pusher::socket_id(&publish.except[0]) });
        if let Some(user) = event.user_id {
            fields["user_id"] = json!(user);
        }
        hub.webhooks.channel_event(publish.channel.as_str(), "client_event", fields);
    }
    publish.apply(hub).await.map(drop)
}
