//! The router calls the fan-out scenarios need, over one kept-alive
//! HTTP/1.1 connection, as a real publishing backend would hold.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use protocol::pusher::App;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A call the router answered 503 (its store did not answer: nothing was
/// applied) is made again, as a backend would, this many times at most.
const UNAVAILABLE_RETRIES: u32 = 10;
const UNAVAILABLE_PAUSE: Duration = Duration::from_millis(200);

/// The router answered 503: the command was not applied.
#[derive(Debug)]
struct Unavailable(String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

pub struct RouterApi {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl RouterApi {
    pub fn new(addr: SocketAddr) -> RouterApi {
        RouterApi { addr, conn: None }
    }

    pub async fn join(&mut self, channel: &str, sessions: &[String]) -> anyhow::Result<()> {
        for batch in sessions.chunks(1000) {
            self.post("/v1/join", &json!({"channel": channel, "sessions": batch})).await?;
        }
        Ok(())
    }

    /// Joins one session, asking for the channel's kept messages.
    pub async fn join_with_history(&mut self, channel: &str, session: &str) -> anyhow::Result<()> {
        self.post("/v1/join", &json!({"channel": channel, "sessions": [session], "history": true})).await.map(drop)
    }

    /// Returns how many members the router found online.
    pub async fn publish(&mut self, channel: &str, data: &str) -> anyhow::Result<u64> {
        let reply = self.post("/v1/publish", &json!({"channel": channel, "data": data})).await?;
        Ok(reply["sessions"].as_u64().unwrap_or(0))
    }

    /// Triggers event `name` with `data` on a Pusher app's `channel`,
    /// through the router's Pusher HTTP API, signed as the SDKs sign.
    pub async fn pusher_trigger(&mut self, app: &App, channel: &str, name: &str, data: &str) -> anyhow::Result<()> {
        let body = json!({"name": name, "channel": channel, "data": data});
        let path = format!("/apps/{}/events", app.id);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let query = app.signed_query("POST", &path, body.to_string().as_bytes(), now);
        self.post(&format!("{path}?{query}"), &body).await.map(drop)
    }

    /// Publishes as fooking's PHP client does: a CH_PUB frame on a
    /// connection of its own to the binary port `addr`, no reply read.
    pub async fn publish_one_call(addr: SocketAddr, channel: &str, data: &str) -> anyhow::Result<()> {
        let mut frame = Vec::with_capacity(8 + channel.len() + data.len());
        frame.extend_from_slice(&9u16.to_be_bytes());
        frame.extend_from_slice(&u16::try_from(channel.len())?.to_be_bytes());
        frame.extend_from_slice(&u32::try_from(data.len())?.to_be_bytes());
        frame.extend_from_slice(channel.as_bytes());
        frame.extend_from_slice(data.as_bytes());
        let mut conn = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
        conn.write_all(&frame).await?;
        conn.shutdown().await?;
        Ok(())
    }

    /// Posts `body` to `path`, again while the router answers 503.
    pub async fn post(&mut self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let mut tries = 0;
        loop {
            match self.post_once(path, body).await {
                Err(err) if err.is::<Unavailable>() && tries < UNAVAILABLE_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(UNAVAILABLE_PAUSE).await;
                }
                result => return result,
            }
        }
    }

    async fn post_once(&mut self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let result = tokio::time::timeout(CALL_TIMEOUT, self.exchange(path, &body.to_string())).await;
        match result {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                bail!("{path}: router call timed out")
            }
        }
    }

    async fn exchange(&mut self, path: &str, body: &str) -> anyhow::Result<Value> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(self.addr).await.with_context(|| format!("connect {}", self.addr))?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().expect("just set");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        conn.get_mut().write_all(format!("{head}{body}").as_bytes()).await?;
        let mut status = String::new();
        conn.read_line(&mut status).await?;
        let mut length = None;
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line).await? == 0 {
                bail!("{path}: router closed the connection");
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>()?);
                }
            }
        }
        let mut reply = vec![0u8; length.ok_or_else(|| anyhow!("{path}: reply without Content-Length"))?];
        conn.read_exact(&mut reply).await?;
        let failure = || format!("{path}: {} {}", status.trim_end(), String::from_utf8_lossy(&reply));
        if status.starts_with("HTTP/1.1 503") {
            return Err(Unavailable(failure()).into());
        }
        if !status.starts_with("HTTP/1.1 200") {
            bail!(failure());
        }
        Ok(serde_json::from_slice(&reply)?)
    }
}
