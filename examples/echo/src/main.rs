//! The echo backend: each client message comes back as it went in, text
//! as text and binary as binary. For tests and benchmarks it can also
//! greet each session with its id, report the connect event's params, and
//! log every event it sees.
//!
//! It is a FastCGI responder on the gateway's own record codec, writing
//! each response in one write, so benchmarks measure the gateway rather
//! than a heavyweight app framework.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use futures_util::StreamExt;
use gateway::upstream::fastcgi::{decode_pairs, encode_response, keeps_connection, RecordCodec, RecordType};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

#[derive(Parser, Debug)]
#[command(name = "echo-app")]
struct Config {
    /// FastCGI listener.
    #[arg(long, default_value = "127.0.0.1:9002")]
    listen: SocketAddr,
    /// Answer the connect event with the request's params as JSON.
    #[arg(long)]
    report_connect: bool,
    /// Answer the connect event with the session id (load tests learn their ids so).
    #[arg(long)]
    greet: bool,
    /// Refuse every connection: answer the connect event `Status: 403`.
    #[arg(long)]
    refuse_connect: bool,
    /// Answer messages that start with "sleep" only after this many milliseconds.
    #[arg(long, default_value_t = 0)]
    slow_ms: u64,
    /// Wait a random 0..N milliseconds before each answer (order tests).
    #[arg(long, default_value_t = 0)]
    random_delay_ms: u64,
    /// Append one JSON line per event (event, params, body) to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    /// The gateway's --param-prefix, before EVENT (HTTP_ is always understood).
    #[arg(long, default_value = "")]
    param_prefix: String,
}

struct App {
    config: Config,
    log: Option<Mutex<std::fs::File>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing(runtime::LogFormat::Text);
    let config = Config::parse();
    let log = match &config.log {
        Some(path) => Some(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?)),
        None => None,
    };
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, "echo-app ready");
    let app = Arc::new(App { config, log });
    let shutdown = runtime::Shutdown::on_signal();
    runtime::accept_loop(listener, runtime::Slots::new(4096), shutdown, move |stream, _| serve(stream, app.clone()))
        .await;
    Ok(())
}

/// One FastCGI connection: requests one after another, each answered in one write.
async fn serve(stream: TcpStream, app: Arc<App>) {
    let mut conn = Framed::new(stream, RecordCodec);
    let (mut params, mut stdin) = (BytesMut::new(), BytesMut::new());
    let mut keep = true;
    while let Some(Ok(record)) = conn.next().await {
        match record.kind {
            k if k == RecordType::BeginRequest as u8 => {
                keep = keeps_connection(&record);
                params.clear();
                stdin.clear();
            }
            k if k == RecordType::Params as u8 => params.extend_from_slice(&record.content),
            k if k == RecordType::AbortRequest as u8 => {
                if let Some(file) = &app.log {
                    let _ = file.lock().unwrap().write_all(b"{\"event\":\"abort\"}\n");
                }
            }
            k if k == RecordType::Stdin as u8 && !record.content.is_empty() => stdin.extend_from_slice(&record.content),
            k if k == RecordType::Stdin as u8 => {
                let Some(pairs) = decode_pairs(&params) else { return };
                if app.config.slow_ms > 0 && stdin.starts_with(b"sleep") {
                    tokio::time::sleep(std::time::Duration::from_millis(app.config.slow_ms)).await;
                }
                if app.config.random_delay_ms > 0 {
                    let jitter = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), &stdin[..]);
                    tokio::time::sleep(std::time::Duration::from_millis(jitter % app.config.random_delay_ms)).await;
                }
                let stdout = app.respond(&pairs, &stdin);
                let mut out = BytesMut::with_capacity(stdout.len() + 32);
                encode_response(&mut out, record.request_id, &stdout, 0);
                if conn.get_mut().write_all(&out).await.is_err() || !keep {
                    return;
                }
            }
            _ => {}
        }
    }
}

impl App {
    /// The CGI response (headers and body) for one event.
    fn respond(&self, pairs: &[(Bytes, Bytes)], body: &[u8]) -> Vec<u8> {
        let param = |name: &str| pairs.iter().find(|(n, _)| n == name.as_bytes()).map(|(_, v)| v.as_ref());
        // `HTTP_EVENT` when the gateway runs with `--param-prefix HTTP_`.
        let prefixed = format!("{}EVENT", self.config.param_prefix);
        let event = match param(&prefixed).or_else(|| param("HTTP_EVENT")) {
            Some(b"1") => "connect",
            Some(b"2") => "close",
            Some(b"3") => "offline",
            Some(b"4") => "online",
            Some(b"5") => "subscribe",
            Some(b"6") => "occupied",
            Some(b"7") => "vacated",
            _ => "message",
        };
        if let Some(file) = &self.log {
            let line = json!({"event": event, "params": params_json(pairs), "body": String::from_utf8_lossy(body)});
            // One write per line, so a reader never sees half of one.
            let _ = file.lock().unwrap().write_all(format!("{line}\n").as_bytes());
        }
        let binary = param("CONTENT_TYPE") == Some(b"application/octet-stream");
        let (content_type, reply): (&str, &[u8]) = match event {
            "message" if binary => ("application/octet-stream", body),
            "message" => ("text/plain; charset=utf-8", body),
            // A subscribe is allowed, but to a channel whose name begins "private-".
            "subscribe" => {
                let channel = param(&format!("{}CHANNEL", self.config.param_prefix)).unwrap_or_default();
                if channel.starts_with(b"private-") {
                    return b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nprivate".to_vec();
                }
                ("text/plain", b"")
            }
            "connect" if self.config.refuse_connect => {
                return b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno entry".to_vec();
            }
            "connect" if self.config.report_connect => {
                let report = Value::Object(params_json(pairs)).to_string();
                return [b"Content-Type: application/json\r\n\r\n", report.as_bytes()].concat();
            }
            "connect" if self.config.greet => {
                ("text/plain", param("SESSIONID").or_else(|| param("HTTP_SESSIONID")).unwrap_or_default())
            }
            _ => ("text/plain", b""),
        };
        // "remember NAME" asks the gateway to keep NAME as session meta.
        let meta = match body.strip_prefix(b"remember ") {
            Some(name) if event == "message" => format!("X-Meta-User: {}\r\n", String::from_utf8_lossy(name)),
            _ => String::new(),
        };
        // An echoed empty message is an empty message: the gateway sends one
        // only when asked outright, as fooking backends never did.
        let empty = if event == "message" && reply.is_empty() { "X-Send-Empty: 1\r\n" } else { "" };
        [format!("{meta}{empty}Content-Type: {content_type}\r\n\r\n").as_bytes(), reply].concat()
    }
}

/// The params by name; a name sent more than once has all its values, in
/// order, as an array, so a test sees what a backend could be fooled by.
fn params_json(pairs: &[(Bytes, Bytes)]) -> Map<String, Value> {
    let mut params = Map::new();
    for (name, value) in pairs {
        let value = json!(String::from_utf8_lossy(value));
        match params.entry(String::from_utf8_lossy(name)) {
            serde_json::map::Entry::Vacant(entry) => _ = entry.insert(value),
            serde_json::map::Entry::Occupied(mut entry) => match entry.get_mut() {
                Value::Array(values) => values.push(value),
                first => *first = json!([first.take(), value]),
            },
        }
    }
    params
}
