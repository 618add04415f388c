use protocol::cmd::{publish_frame, Channel, Entry, Payload, Publish, Reply};
use protocol::{Frame, KeptPub, Offset, SessionId};

use super::Apply;
use crate::hub::Hub;
use crate::metrics::Count;
use crate::store::history::Rule;
use crate::store::StoreResult;

/// One frame to each gateway that holds members; no member is read from
/// the store.
impl Apply for Publish {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        publish_kept(hub, &self.channel, &[], &self.payload, self.to_frame()).await
    }
}

/// Publishes `frame`, and on a channel that keeps history appends the
/// message first and publishes it as KEPT_PUB with its offset, both under
/// the channel's seam (see [`crate::seams`]); with `--history-envelope` the
/// message goes out in its envelope. A message that cannot be kept is
/// still published, as it is, and counted.
pub(super) async fn publish_kept(
    hub: &Hub,
    channel: &Channel,
    except: &[SessionId],
    payload: &Payload,
    frame: Frame,
) -> StoreResult<Reply> {
    let name = channel.as_str();
    let Some(rule) = hub.history_rule(name) else {
        return Ok(Reply::Delivered(hub.publish(name, frame, except)));
    };
    let _seam = hub.seams.hold(name).await;
    let mut frame = frame;
    if payload.data.len() > rule.max_bytes || !fits_an_answer(hub, payload) {
        hub.metrics.count(Count::HistoryTooLarge);
    } else {
        match hub.store().history_append(name, payload, rule).await {
            Ok(appended) => {
                hub.metrics.count(Count::HistoryAppended);
                hub.metrics.add(Count::HistoryTrimmed, appended.trimmed);
                hub.metrics.add(Count::HistoryEvicted, appended.evicted);
                let offset = Offset::parse(&appended.offset);
                let sent = as_sent(hub, name, rule, appended.offset, payload.clone());
                frame = match offset {
                    Some(offset) => {
                        KeptPub { except: except.to_vec(), channel: channel.clone(), offset, payload: sent }.to_frame()
                    }
                    None => publish_frame(channel.clone(), except, sent),
                };
            }
            Err(err) => {
                hub.metrics.count(Count::HistoryFailed);
                tracing::warn!(%err, channel = name, "published without keeping it in the channel's history");
            }
        }
    }
    Ok(Reply::Delivered(hub.publish(name, frame, except)))
}

/// Whether a message, kept, fits one history answer (escaped JSON, or
/// base64): one that would not is published but not kept.
fn fits_an_answer(hub: &Hub, payload: &Payload) -> bool {
    let room = hub.max_frame().saturating_sub(crate::presence::LIST_ENVELOPE);
    payload.data.len().saturating_mul(6) < room
        || serde_json::to_vec(&Entry::new(String::new(), payload)).is_ok_and(|json| json.len() + 64 <= room)
}

/// A kept message as clients get it: as published, or with
/// `--history-envelope` as `{"fk":"pub","channel","offset","data"}` (or
/// `"data_base64"`) text, unless that would pass the frame limit.
pub(super) fn as_sent(hub: &Hub, channel: &str, rule: Rule, offset: String, payload: Payload) -> Payload {
    if !rule.envelope {
        return payload;
    }
    let mut envelope = serde_json::json!({ "fk": "pub", "channel": channel });
    let entry = serde_json::to_value(Entry::new(offset, &payload)).expect("entries serialize");
    if let (Some(envelope), serde_json::Value::Object(entry)) = (envelope.as_object_mut(), entry) {
        envelope.extend(entry);
    }
    let text = envelope.to_string();
    if text.len() > hub.push_limit() {
        tracing::warn!(channel, "a kept message sent without its envelope: it would pass the frame limit");
        return payload;
    }
    Payload::text(text)
}
