use protocol::cmd::{Payload, Publish, Reply};
use protocol::{Frame, SessionId};

use super::Apply;
use crate::hub::Hub;
use crate::metrics::Count;
use crate::store::StoreResult;

/// One frame to each gateway that holds members; no member is read from
/// the store.
impl Apply for Publish {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        publish_kept(hub, self.channel.as_str(), self.to_frame(), &[], &self.payload).await
    }
}

/// Publishes, and on a channel that keeps history appends the message
/// first, both under the channel's seam (see [`Hub::seam`]). A message
/// that cannot be kept is still published, and counted.
pub(super) async fn publish_kept(
    hub: &Hub,
    channel: &str,
    frame: Frame,
    except: &[SessionId],
    payload: &Payload,
) -> StoreResult<Reply> {
    let Some(rule) = hub.history_rule(channel) else {
        let recent = hub.recent_routes(channel).await;
        return Ok(Reply::Delivered(hub.publish(channel, frame, except, &recent)));
    };
    let _seam = hub.seam(channel).await;
    if payload.data.len() > rule.max_bytes {
        hub.metrics.count(Count::HistoryTooLarge);
    } else {
        match hub.store().history_append(channel, payload, rule).await {
            Ok(appended) => {
                hub.metrics.count(Count::HistoryAppended);
                hub.metrics.add(Count::HistoryTrimmed, appended.trimmed);
            }
            Err(err) => {
                hub.metrics.count(Count::HistoryFailed);
                tracing::warn!(%err, channel, "published without keeping it in the channel's history");
            }
        }
    }
    let recent = hub.recent_routes(channel).await;
    Ok(Reply::Delivered(hub.publish(channel, frame, except, &recent)))
}
