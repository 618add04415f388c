//! A lean Server-Sent Events client: the gateway's event stream read as a
//! browser reads it (to the connection's end, or chunked from a server
//! that sends it so), and posts on a kept-alive connection of their own,
//! one at a time, as fk.js sends them. loadgen's `sse://` endpoints, and
//! the end-to-end tests' client for a stream on a connection they opened.

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct SseClient {
    stream: TcpStream,
    /// What was read and not yet decoded (chunked framing).
    raw: BytesMut,
    /// Whether the body is chunked; else it ends with the connection.
    chunked: bool,
    /// The stream's body, decoded, not yet parsed into events.
    body: BytesMut,
    /// Posts go on this connection, opened at the first.
    poster: Option<TcpStream>,
    addr: std::net::SocketAddr,
    /// The stream's path, less its query: posts go to `PATH/send`.
    path: String,
    pub id: String,
    token: String,
}

/// One event: its type (empty for a plain message) and data.
struct Event {
    kind: String,
    data: String,
}

impl SseClient {
    /// Opens the stream at `path` (with its query) on `stream`, connected to
    /// `addr`, and reads up to its session event.
    pub async fn connect(mut stream: TcpStream, addr: std::net::SocketAddr, path: &str) -> anyhow::Result<SseClient> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = BytesMut::with_capacity(1024);
        let head_end = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if stream.read_buf(&mut raw).await? == 0 {
                bail!("the gateway closed before its response");
            }
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") || !head.contains("content-type: text/event-stream") {
            bail!("not an event stream: {}", head.lines().next().unwrap_or_default());
        }
        let chunked = head.contains("transfer-encoding: chunked");
        raw.advance(head_end);
        let path = path.split('?').next().unwrap_or(path).trim_end_matches('/').to_owned();
        let mut client = SseClient {
            stream,
            raw,
            chunked,
            body: BytesMut::new(),
            poster: None,
            addr,
            path,
            id: String::new(),
            token: String::new(),
        };
        loop {
            let event = client.next_event().await?.context("the stream ended before its session event")?;
            if event.kind == "session" {
                let session: serde_json::Value = serde_json::from_str(&event.data)?;
                client.id = session["id"].as_str().unwrap_or_default().to_owned();
                client.token = session["send"].as_str().unwrap_or_default().to_owned();
                return Ok(client);
            }
        }
    }

    /// Whether the stream came chunked, not ending with its connection (the
    /// gateway's never does: its streams are their connections').
    pub fn chunked(&self) -> bool {
        self.chunked
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Posts one message and waits for the gateway to take it (202).
    pub async fn send(&mut self, payload: &[u8], binary: bool) -> anyhow::Result<()> {
        let content_type = if binary { "application/octet-stream" } else { "text/plain; charset=utf-8" };
        let status = self.post("send", payload, content_type).await?;
        if status != 202 {
            bail!("post refused: {status}");
        }
        Ok(())
    }

    /// Ends the session, as a close frame would.
    pub async fn close(mut self) {
        let _ = self.post("close", b"", "text/plain").await;
    }

    async fn post(&mut self, what: &str, payload: &[u8], content_type: &str) -> anyhow::Result<u16> {
        let poster = match &mut self.poster {
            Some(poster) => poster,
            None => {
                let poster = TcpStream::connect(self.addr).await?;
                poster.set_nodelay(true)?;
                self.poster.insert(poster)
            }
        };
        let head = format!(
            "POST {}/{what} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.path, self.addr, self.token, payload.len()
        );
        let mut request = Vec::with_capacity(head.len() + payload.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(payload);
        poster.write_all(&request).await?;
        let mut response = BytesMut::with_capacity(256);
        loop {
            if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while response.len() < end + 4 + length {
                    if poster.read_buf(&mut response).await? == 0 {
                        bail!("the gateway closed mid-response");
                    }
                }
                return head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status");
            }
            if poster.read_buf(&mut response).await? == 0 {
                self.poster = None;
                bail!("the gateway closed the post's connection");
            }
        }
    }

    /// The next message's bytes; `None` when the stream ends (its close
    /// event, or EOF).
    pub async fn recv(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            let Some(event) = self.next_event().await? else { return Ok(None) };
            match event.kind.as_str() {
                "" | "message" => return Ok(Some(Bytes::from(event.data))),
                "binary" | "text64" => return Ok(Some(Bytes::from(STANDARD.decode(event.data)?))),
                "close" => return Ok(None),
                _ => continue,
            }
        }
    }

    async fn next_event(&mut self) -> anyhow::Result<Option<Event>> {
        loop {
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block = self.body.split_to(end + 2);
                let mut event = Event { kind: String::new(), data: String::new() };
                let mut has_data = false;
                for line in std::str::from_utf8(&block)?.lines() {
                    if let Some(kind) = line.strip_prefix("event: ") {
                        event.kind = kind.to_owned();
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(data);
                        has_data = true;
                    }
                }
                if has_data {
                    return Ok(Some(event));
                }
                continue;
            }
            if !self.dechunk()? && self.stream.read_buf(&mut self.raw).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Moves whole chunks from `raw` to `body` (all of it when not
    /// chunked): whether any moved.
    fn dechunk(&mut self) -> anyhow::Result<bool> {
        if !self.chunked {
            let moved = !self.raw.is_empty();
            self.body.extend_from_slice(&self.raw.split());
            return Ok(moved);
        }
        let mut moved = false;
        while let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..line_end])?.split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
            if self.raw.len() < line_end + 2 + size + 2 {
                break;
            }
            self.raw.advance(line_end + 2);
            self.body.extend_from_slice(&self.raw[..size]);
            self.raw.advance(size + 2);
            moved = true;
        }
        Ok(moved)
    }
}
