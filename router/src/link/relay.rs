//! PUBLISH_EXCEPT from a gateway: a client's event that its gateway let
//! through (a Pusher client event on a channel the client is in), to the
//! channel's other members, as a backend's publish goes.

use protocol::cmd::PublishExcept;

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
    publish.apply(hub).await.map(drop)
}
