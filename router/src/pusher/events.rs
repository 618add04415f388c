//! `POST /apps/{id}/events` and `batch_events`: an event to one or more
//! channels (but the sender's own socket), as a publish of its envelope.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use protocol::cmd::{Channel, Payload, Publish, PublishExcept};
use protocol::pusher::{self, App, Envelope};

use super::{refused, unavailable, ApiResult};
use crate::cmd::Apply;
use crate::hub::Hub;

/// Pusher's limits: channels per event, events per batch, an event's name
/// and its data.
const MAX_CHANNELS: usize = 100;
const MAX_BATCH: usize = 10;
const MAX_NAME: usize = 200;
pub const MAX_DATA: usize = 10 << 10;

#[derive(Deserialize)]
struct Event {
    name: String,
    data: Value,
    channel: Option<String>,
    #[serde(default)]
    channels: Vec<String>,
    socket_id: Option<String>,
    info: Option<String>,
}

#[derive(Deserialize)]
struct Batch {
    batch: Vec<Event>,
}

pub async fn trigger(hub: &Hub, app: &App, body: &[u8]) -> ApiResult {
    let event: Event = serde_json::from_slice(body).map_err(|err| refused(400, format!("Invalid JSON: {err}")))?;
    let mut channels = event.channels.clone();
    channels.extend(event.channel.clone());
    if channels.is_empty() || channels.len() > MAX_CHANNELS {
        return Err(refused(400, format!("an event goes to 1 to {MAX_CHANNELS} channels")));
    }
    let info = publish(hub, app, &event, &channels).await?;
    Ok(match info {
        Some(info) => json!({ "channels": info }),
        None => json!({}),
    })
}

pub async fn batch(hub: &Hub, app: &App, body: &[u8]) -> ApiResult {
    let batch: Batch = serde_json::from_slice(body).map_err(|err| refused(400, format!("Invalid JSON: {err}")))?;
    if batch.batch.len() > MAX_BATCH {
        return Err(refused(400, format!("a batch holds {MAX_BATCH} events at most")));
    }
    for event in &batch.batch {
        check(event)?;
        if event.channel.is_none() {
            return Err(refused(400, "each event of a batch names its channel"));
        }
    }
    let mut infos = Vec::new();
    for event in &batch.batch {
        let channel = event.channel.clone().into_iter().collect::<Vec<_>>();
        let info = publish(hub, app, event, &channel).await?;
        infos.push(info.and_then(|mut info| info.values_mut().next().map(Value::take)).unwrap_or(json!({})));
    }
    Ok(match batch.batch.iter().any(|event| event.info.is_some()) {
        true => json!({ "batch": infos }),
        false => json!({}),
    })
}

fn check(event: &Event) -> Result<(), pusher::ApiRefusal> {
    if event.name.is_empty() || event.name.len() > MAX_NAME {
        return Err(refused(400, format!("an event's name is 1 to {MAX_NAME} bytes")));
    }
    Ok(())
}

/// Publishes the event's envelope to each channel (but to `socket_id`),
/// and says what `info` asks of each.
async fn publish(
    hub: &Hub,
    app: &App,
    event: &Event,
    channels: &[String],
) -> Result<Option<Map<String, Value>>, pusher::ApiRefusal> {
    check(event)?;
    let data = pusher::data_text(&event.data);
    if data.len() > MAX_DATA {
        return Err(refused(413, format!("an event's data is {MAX_DATA} bytes at most")));
    }
    if let Some(bad) = channels.iter().find(|channel| !pusher::valid_channel(channel)) {
        return Err(refused(400, format!("Invalid channel name {bad:?}")));
    }
    let except = match event.socket_id.as_deref() {
        None => None,
        Some(socket) => Some(
            pusher::session_of_socket(socket).ok_or_else(|| refused(400, format!("Invalid socket_id {socket:?}")))?,
        ),
    };
    let mut info = event.info.as_ref().map(|_| Map::new());
    for name in channels {
        let envelope = Envelope::new(event.name.clone(), Some(name), Value::String(data.clone()));
        let payload = Payload { data: Bytes::from(envelope.to_json()), binary: false };
        let channel = Channel::new(pusher::fk_name(&app.id, name)).map_err(|err| refused(400, err.to_string()))?;
        let applied = match except {
            Some(session) => PublishExcept { channel, except: vec![session], payload }.apply(hub).await,
            None => Publish { channel, payload }.apply(hub).await,
        };
        applied.map_err(unavailable)?;
        if let (Some(info), Some(asked)) = (info.as_mut(), event.info.as_deref()) {
            info.insert(name.clone(), super::channels::info(hub, app, name, asked).await?);
        }
    }
    Ok(info)
}
