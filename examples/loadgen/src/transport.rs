//! One client connection to the system under test: a WebSocket, raw TCP
//! with fooking's framing (4-byte big-endian length, then the body), or an
//! SSE stream with posts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use loadgen::raw_ws::{RawWebSocket, DEFLATE_OFFER};
use loadgen::sse::SseClient;

#[derive(Debug, Clone)]
pub enum Endpoint {
    /// `ws://host:port/path`
    WebSocket { url: String, addr: SocketAddr },
    /// `tcp://host:port`
    Framed { addr: SocketAddr },
    /// `ws+deflate://host:port/path`: our own client, offering permessage-deflate.
    Deflate { url: String, addr: SocketAddr },
    /// `sse://host:port/path`: an event stream, and a post per message.
    Sse { path: String, addr: SocketAddr },
}

impl FromStr for Endpoint {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Endpoint> {
        let (scheme, rest) =
            s.split_once("://").ok_or_else(|| anyhow!("{s}: expected ws://HOST:PORT/PATH or tcp://HOST:PORT"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
            .with_context(|| format!("{s}: bad address"))?
            .next()
            .ok_or_else(|| anyhow!("{s}: no address"))?;
        match scheme {
            "ws" => Ok(Endpoint::WebSocket { url: s.to_owned(), addr }),
            "tcp" => Ok(Endpoint::Framed { addr }),
            "ws+deflate" => Ok(Endpoint::Deflate { url: s.to_owned(), addr }),
            "sse" => Ok(Endpoint::Sse { path: format!("/{}", rest.split_once('/').map_or("", |(_, p)| p)), addr }),
            other => bail!("{s}: unsupported scheme {other} (ws, ws+deflate, sse or tcp)"),
        }
    }
}

impl Endpoint {
    /// The same endpoint with `query` as the URL's query string.
    pub fn with_query(&self, query: &str) -> Endpoint {
        let with_query = |url: &str| format!("{}?{query}", url.split('?').next().unwrap_or(url));
        match self {
            Endpoint::WebSocket { url, addr } => Endpoint::WebSocket { url: with_query(url), addr: *addr },
            Endpoint::Deflate { url, addr } => Endpoint::Deflate { url: with_query(url), addr: *addr },
            Endpoint::Sse { path, addr } => Endpoint::Sse { path: with_query(path), addr: *addr },
            framed => framed.clone(),
        }
    }
}

/// A loopback source address for connection `i`: 100 connections per
/// address over 127.0.0.0/8, so ephemeral ports never run out.
pub fn source_ip(i: usize) -> IpAddr {
    let n = 1 + (i / 100) as u32;
    IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | (n & 0x00ff_ffff)))
}

pub enum Conn {
    WebSocket(Box<WebSocketStream<TcpStream>>),
    Framed(Framed<TcpStream, LengthDelimitedCodec>),
    Deflate(Box<RawWebSocket>),
    Sse(Box<SseClient>),
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Conn {
    pub async fn open(endpoint: &Endpoint, source: Option<IpAddr>) -> anyhow::Result<Conn> {
        tokio::time::timeout(CONNECT_TIMEOUT, Conn::open_inner(endpoint, source)).await.context("connect timed out")?
    }

    async fn open_inner(endpoint: &Endpoint, source: Option<IpAddr>) -> anyhow::Result<Conn> {
        let addr = match endpoint {
            Endpoint::WebSocket { addr, .. }
            | Endpoint::Framed { addr }
            | Endpoint::Deflate { addr, .. }
            | Endpoint::Sse { addr, .. } => *addr,
        };
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(ip) = source.filter(|_| addr.ip().is_loopback()) {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await.with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        match endpoint {
            Endpoint::WebSocket { url, .. } => {
                let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
                let (ws, _) = tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config)).await?;
                Ok(Conn::WebSocket(Box::new(ws)))
            }
            Endpoint::Framed { .. } => {
                let codec =
                    LengthDelimitedCodec::builder().length_field_length(4).max_frame_length(16 << 20).new_codec();
                Ok(Conn::Framed(Framed::new(stream, codec)))
            }
            Endpoint::Deflate { url, .. } => {
                Ok(Conn::Deflate(Box::new(RawWebSocket::connect(stream, url, DEFLATE_OFFER).await?)))
            }
            Endpoint::Sse { path, addr } => Ok(Conn::Sse(Box::new(SseClient::connect(stream, *addr, path).await?))),
        }
    }

    pub async fn send(&mut self, payload: Bytes, binary: bool) -> anyhow::Result<()> {
        match self {
            Conn::WebSocket(ws) => {
                let message = if binary { Message::Binary(payload) } else { Message::Text(payload.try_into()?) };
                ws.send(message).await?;
            }
            Conn::Framed(framed) => framed.send(payload).await?,
            Conn::Deflate(ws) => ws.send(&payload, if binary { 0x2 } else { 0x1 }).await?,
            Conn::Sse(sse) => sse.send(&payload, binary).await?,
        }
        Ok(())
    }

    /// The next data message; `None` when the server closed.
    pub async fn recv(&mut self) -> anyhow::Result<Option<Bytes>> {
        match self {
            Conn::WebSocket(ws) => loop {
                match ws.next().await.transpose()? {
                    None | Some(Message::Close(_)) => return Ok(None),
                    Some(Message::Text(text)) => return Ok(Some(text.into())),
                    Some(Message::Binary(data)) => return Ok(Some(data)),
                    Some(_) => continue,
                }
            },
            Conn::Framed(framed) => Ok(framed.next().await.transpose()?.map(|b| b.freeze())),
            Conn::Deflate(ws) => ws.recv().await,
            Conn::Sse(sse) => sse.recv().await,
        }
    }

    pub async fn recv_within(&mut self, timeout: Duration) -> anyhow::Result<Bytes> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Err(_) => bail!("no message within {timeout:?}"),
            Ok(Ok(None)) => bail!("server closed the connection"),
            Ok(other) => Ok(other?.expect("checked")),
        }
    }

    /// Drops the connection as a network failure would: a reset, no close.
    pub fn kill(self) {
        let stream = match &self {
            Conn::WebSocket(ws) => ws.get_ref(),
            Conn::Framed(framed) => framed.get_ref(),
            Conn::Deflate(ws) => ws.stream(),
            Conn::Sse(sse) => sse.stream(),
        };
        let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    }

    pub async fn close(self) {
        match self {
            Conn::WebSocket(mut ws) => {
                let _ = WebSocketStream::close(&mut ws, None).await;
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), async { while let Some(Ok(_)) = ws.next().await {} })
                        .await;
            }
            Conn::Framed(framed) => drop(framed),
            Conn::Deflate(mut ws) => {
                let _ = ws.send(&[0x03, 0xe8], 0x8).await;
            }
            Conn::Sse(sse) => sse.close().await,
        }
    }
}
