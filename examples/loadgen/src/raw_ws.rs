//! A lean WebSocket client at the frame level, with permessage-deflate
//! (which tungstenite lacks): loadgen's `ws+deflate://` endpoints, and the
//! end-to-end tests' client for compressed frames and frames a
//! well-behaved client would never send. It counts the bytes it reads off
//! the wire, so a run can compare them with compression on and off.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use anyhow::{bail, Context};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes all raw clients read after their handshakes.
pub static WIRE_BYTES_IN: AtomicU64 = AtomicU64::new(0);
/// Messages that arrived compressed.
pub static COMPRESSED_MESSAGES: AtomicU64 = AtomicU64::new(0);

/// What loadgen offers: permessage-deflate, no context takeover.
pub const DEFLATE_OFFER: &str = "permessage-deflate; client_no_context_takeover; server_no_context_takeover";
pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
/// The most a compressed message from the server may inflate to.
const MAX_INFLATED: usize = 64 << 20;

pub struct RawWebSocket {
    stream: TcpStream,
    buf: BytesMut,
    /// The 101's head, lowercased.
    pub response: String,
    /// The message being gathered across fragments, and whether it is compressed.
    message: Option<(BytesMut, bool)>,
}

/// A frame from the server.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub compressed: bool,
    pub opcode: u8,
    pub payload: Bytes,
}

impl Frame {
    /// The payload, inflated if the frame is compressed.
    pub fn message(&self) -> anyhow::Result<Bytes> {
        if self.compressed {
            inflate(&self.payload)
        } else {
            Ok(self.payload.clone())
        }
    }

    /// A close frame's code.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawWebSocket {
    /// The upgrade for `url` (`SCHEME://HOST:PORT/PATH`), with `extensions`
    /// as `Sec-WebSocket-Extensions` (none if empty).
    pub async fn connect(mut stream: TcpStream, url: &str, extensions: &str) -> anyhow::Result<RawWebSocket> {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        if !extensions.is_empty() {
            request.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut buf = BytesMut::with_capacity(1024);
        let end = loop {
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("closed during the handshake");
            }
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let response = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        if !response.starts_with("http/1.1 101") {
            bail!("no upgrade: {}", response.lines().next().unwrap_or(""));
        }
        buf.advance(end);
        Ok(RawWebSocket { stream, buf, response, message: None })
    }

    /// The extensions the server agreed to, if any.
    pub fn extensions(&self) -> Option<&str> {
        self.response.lines().find_map(|line| line.strip_prefix("sec-websocket-extensions:")).map(str::trim)
    }

    /// One whole message, masked and uncompressed.
    pub async fn send(&mut self, payload: &[u8], opcode: u8) -> anyhow::Result<()> {
        self.send_frame(opcode, true, false, payload).await
    }

    /// One masked frame, as given: `compressed` sets RSV1.
    pub async fn send_frame(&mut self, opcode: u8, fin: bool, compressed: bool, payload: &[u8]) -> anyhow::Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push((fin as u8) << 7 | (compressed as u8) << 6 | opcode);
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        let mask = [0x1f, 0x8b, 0x3c, 0x70];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    /// The next frame as it came; `None` once the server closed the socket.
    pub async fn recv_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.next_frame() {
                return Ok(Some(frame));
            }
            let read = self.stream.read_buf(&mut self.buf).await?;
            if read == 0 {
                return Ok(None);
            }
            WIRE_BYTES_IN.fetch_add(read as u64, Relaxed);
        }
    }

    /// The next data message, inflated; pings answered; `None` at a close.
    pub async fn recv(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            let Some(frame) = self.recv_frame().await? else { return Ok(None) };
            match frame.opcode {
                CLOSE => return Ok(None),
                0x9 => self.send(&frame.payload, 0xa).await?,
                0xa => {}
                0x0 => {
                    self.message.as_mut().context("a continuation without a start")?.0.extend_from_slice(&frame.payload)
                }
                _ => self.message = Some((BytesMut::from(&frame.payload[..]), frame.compressed)),
            }
            if !frame.fin || frame.opcode >= CLOSE {
                continue;
            }
            let (data, compressed) = self.message.take().context("a message")?;
            if !compressed {
                return Ok(Some(data.freeze()));
            }
            COMPRESSED_MESSAGES.fetch_add(1, Relaxed);
            return inflate(&data).map(Some);
        }
    }

    /// A whole frame from the buffer.
    fn next_frame(&mut self) -> Option<Frame> {
        let buf = &self.buf;
        let (first, second) = (*buf.first()?, *buf.get(1)?);
        let (len, header) = match second & 0x7f {
            126 => (u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize, 4),
            127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize, 10),
            len => (len as usize, 2),
        };
        if buf.len() < header + len {
            return None;
        }
        self.buf.advance(header);
        let payload = self.buf.split_to(len).freeze();
        Some(Frame { fin: first & 0x80 != 0, compressed: first & 0x40 != 0, opcode: first & 0x0f, payload })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// One message deflated on its own at zlib's default level, as a client
/// without context takeover sends it (RSV1's payload).
pub fn deflate(data: &[u8]) -> Vec<u8> {
    ws_deflate::compress_at(data, 6).into()
}

/// A compressed message's payload, inflated.
pub fn inflate(data: &[u8]) -> anyhow::Result<Bytes> {
    Ok(ws_deflate::inflate(data, MAX_INFLATED)?.into())
}
