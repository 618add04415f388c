//! Pusher's webhooks: what happened to an app's channels (occupied,
//! vacated, a member added or removed, a client event), posted to the
//! app's URL as Pusher posts them: `{"time_ms":..,"events":[..]}`, signed
//! with `X-Pusher-Key` and `X-Pusher-Signature` (the HMAC-SHA256 of the body
//! under the app's secret), batched (up to 100 events, 50 ms), and tried
//! again with backoff while the receiver is down, for 30 s, as a
//! gateway's close events are. Each app's queue is bounded; what does not
//! fit is dropped and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Uri};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use protocol::pusher::{self, App, Apps};

use crate::metrics::{Count, RouterMetrics};

/// Events a webhook carries at most, and how long the first waits for more.
const BATCH: usize = 100;
const BATCH_WAIT: Duration = Duration::from_millis(50);
/// Events waiting per app at most.
const QUEUE: usize = 10_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first and the longest pause between tries, and how long a batch is tried.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
const RETRY_FOR: Duration = Duration::from_secs(30);

/// Where each app's webhooks go; none for an app without a URL.
#[derive(Default)]
pub struct Webhooks {
    queues: HashMap<String, mpsc::Sender<Value>>,
    metrics: Option<Arc<RouterMetrics>>,
}

/// `ID=URL`: the app's webhook URL, plain `http://` (put a TLS proxy
/// before an `https://` receiver).
pub fn parse_target(spec: &str) -> Result<(String, Uri), String> {
    let (id, url) = spec.split_once('=').ok_or("a webhook is APP_ID=URL")?;
    let uri: Uri = url.parse().map_err(|err| format!("webhook URL {url}: {err}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!("webhook URL {url}: http://HOST[:PORT]/PATH only"));
    }
    Ok((id.to_owned(), uri))
}

impl Webhooks {
    /// Starts a sender for each app with a URL (`targets`, parsed by
    /// [`parse_target`]); an app id not among `apps` is refused.
    pub fn start(apps: &Apps, targets: &[(String, Uri)], metrics: Arc<RouterMetrics>) -> anyhow::Result<Webhooks> {
        let mut queues = HashMap::new();
        for (id, url) in targets {
            let app =
                apps.by_id(id).ok_or_else(|| anyhow::anyhow!("--pusher-webhook for {id}: no such --pusher-app"))?;
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(send_batches(app.clone(), url.clone(), rx, metrics.clone()));
            queues.insert(id.clone(), tx);
        }
        Ok(Webhooks { queues, metrics: Some(metrics) })
    }

    /// An event of the fk channel `channel`, if it is an app's with a URL:
    /// `fields` beside its `name` and (Pusher's) `channel`.
    pub fn channel_event(&self, channel: &str, name: &str, fields: Value) {
        let Some((app, pusher_channel)) = pusher::split_fk_channel(channel) else { return };
        let Some(queue) = self.queues.get(app) else { return };
        let mut event = json!({ "name": name, "channel": pusher_channel });
        if let (Value::Object(event), Value::Object(fields)) = (&mut event, fields) {
            event.extend(fields);
        }
        if queue.try_send(event).is_err() {
            if let Some(metrics) = &self.metrics {
                metrics.count(Count::WebhookEventsDropped);
            }
            tracing::warn!(app, "webhook queue full: an event dropped");
        }
    }
}

/// Posts an app's events as they come, a batch at a time.
async fn send_batches(app: Arc<App>, url: Uri, mut events: mpsc::Receiver<Value>, metrics: Arc<RouterMetrics>) {
    while let Some(first) = events.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(event)) => batch.push(event),
                _ => break,
            }
        }
        let time_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let body = Bytes::from(json!({ "time_ms": time_ms as u64, "events": batch }).to_string());
        let signature = app.sign(&String::from_utf8_lossy(&body));
        let started = tokio::time::Instant::now();
        let mut pause = RETRY_FIRST;
        loop {
            match post(&url, &app.key, &signature, body.clone()).await {
                Ok(()) => {
                    metrics.add(Count::WebhookEventsSent, batch.len());
                    break;
                }
                Err(err) if started.elapsed() + pause < RETRY_FOR => {
                    tracing::info!(app = app.id, %err, "webhook not taken: trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Err(err) => {
                    metrics.add(Count::WebhookEventsGivenUp, batch.len());
                    tracing::error!(app = app.id, %err, events = batch.len(), "webhook given up");
                    break;
                }
            }
        }
    }
}

/// One POST; a 2xx is taken.
async fn post(url: &Uri, key: &str, signature: &str, body: Bytes) -> Result<(), String> {
    let (host, port) = (url.host().unwrap_or_default(), url.port_u16().unwrap_or(80));
    let connect = tokio::net::TcpStream::connect((host, port));
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(err.to_string()),
        Err(_) => return Err(format!("no connection within {CONNECT_TIMEOUT:?}")),
    };
    let exchange = async {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = Request::post(url.path_and_query().map_or("/", |pq| pq.as_str()))
            .header(header::HOST, url.authority().map_or(host, |a| a.as_str()))
            .header(header::CONTENT_TYPE, "application/json")
            .header("X-Pusher-Key", key)
            .header("X-Pusher-Signature", signature)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        match response.status().is_success() {
            true => Ok(()),
            false => Err(format!("answered {}", response.status())),
        }
    };
    tokio::time::timeout(RESPONSE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {RESPONSE_TIMEOUT:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_plain_http_urls_of_known_apps() {
        assert!(parse_target("1=http://127.0.0.1:8080/hooks").is_ok());
        for bad in ["1", "1=https://example.com/", "1=/path", "1=http://"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
