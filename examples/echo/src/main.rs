//! The echo backend: each client message comes back as it went in, text
//! as text and binary as binary. For tests and benchmarks, it can also
//! report the params of the connect event and log every event it sees.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Parser;
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_fastcgi::{RequestResult, Requests};

#[derive(Parser, Debug)]
#[command(name = "echo-app")]
struct Config {
    /// FastCGI listener.
    #[arg(long, default_value = "127.0.0.1:9002")]
    listen: SocketAddr,
    /// Answer the connect event with the request's params as JSON.
    #[arg(long)]
    report_connect: bool,
    /// Append one JSON line per event (event, params, body) to this file.
    #[arg(long)]
    log: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    router::runtime::init_tracing();
    let config = Arc::new(Config::parse());
    let log = match &config.log {
        Some(path) => Some(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?)),
        None => None,
    };
    let log = Arc::new(log);
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, "echo-app ready");
    let shutdown = router::runtime::shutdown_on_signal();
    router::runtime::accept_loop(listener, 4096, shutdown, move |stream| serve(stream, config.clone(), log.clone()))
        .await;
    Ok(())
}

async fn serve(mut stream: TcpStream, config: Arc<Config>, log: Arc<Option<Mutex<std::fs::File>>>) {
    let mut requests = Requests::from_split_socket(stream.split(), 1, 1);
    while let Ok(Some(request)) = requests.next().await {
        let (config, log) = (config.clone(), log.clone());
        let processed = request
            .process(|request| async move {
                let mut body = Vec::new();
                let _ = request.get_stdin().read_to_end(&mut body);
                let params: Map<String, Value> = request
                    .str_params_iter()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| (name.to_ascii_uppercase(), json!(value.unwrap_or_default())))
                    .collect();
                // `HTTP_EVENT` when the gateway runs with `--param-prefix HTTP_`.
                let event_param = params.get("EVENT").or_else(|| params.get("HTTP_EVENT"));
                let event = match event_param.and_then(Value::as_str) {
                    Some("1") => "connect",
                    Some("2") => "close",
                    _ => "message",
                };
                if let Some(file) = log.as_ref() {
                    let line = json!({"event": event, "params": params, "body": String::from_utf8_lossy(&body)});
                    let _ = writeln!(file.lock().unwrap(), "{line}");
                }
                let binary = params.get("CONTENT_TYPE").and_then(Value::as_str) == Some("application/octet-stream");
                let (content_type, reply) = match event {
                    "message" if binary => ("application/octet-stream", body),
                    "message" => ("text/plain; charset=utf-8", body),
                    "connect" if config.report_connect => {
                        ("application/json", Value::Object(params).to_string().into_bytes())
                    }
                    _ => ("text/plain", Vec::new()),
                };
                let mut out = format!("Content-Type: {content_type}\r\n\r\n").into_bytes();
                out.extend_from_slice(&reply);
                match request.get_stdout().write(&out).await {
                    Ok(_) => RequestResult::Complete(0),
                    Err(_) => RequestResult::Complete(1),
                }
            })
            .await;
        if processed.is_err() {
            return;
        }
    }
}
