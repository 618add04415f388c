//! A WebSocket client at the frame level, for what tungstenite cannot do:
//! permessage-deflate (RFC 7692), and frames a well-behaved client would
//! never send.

use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(5);
/// What every deflated message ends with, stripped on the wire (§7.2.1).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

pub struct RawClient {
    stream: TcpStream,
    /// Read past the frames handed out so far.
    buffered: Vec<u8>,
    /// The 101's headers, lowercased.
    pub response: String,
    /// Bytes read off the socket after the handshake.
    pub wire_bytes: usize,
}

/// A frame from the server.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub compressed: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The payload, inflated if the frame is compressed.
    pub fn message(&self) -> Vec<u8> {
        if self.compressed {
            inflate(&self.payload)
        } else {
            self.payload.clone()
        }
    }
}

impl RawClient {
    /// Upgrades with `extensions` as `Sec-WebSocket-Extensions` (none if empty).
    pub async fn connect(port: u16, extensions: &str) -> RawClient {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut request = format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        if !extensions.is_empty() {
            request.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut read = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(TIMEOUT, stream.read(&mut chunk)).await.expect("101 in time").unwrap();
            assert!(n > 0, "closed during the handshake: {}", String::from_utf8_lossy(&read));
            read.extend_from_slice(&chunk[..n]);
            if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let response = String::from_utf8_lossy(&read[..end]).to_lowercase();
        assert!(response.starts_with("http/1.1 101"), "no upgrade: {response}");
        RawClient { stream, buffered: read[end..].to_vec(), response, wire_bytes: read.len() - end }
    }

    /// The extensions the server agreed to, if any.
    pub fn extensions(&self) -> Option<&str> {
        self.response.lines().find_map(|line| line.strip_prefix("sec-websocket-extensions:")).map(str::trim)
    }

    /// Sends one masked frame; `compressed` sets RSV1.
    pub async fn send_frame(&mut self, opcode: u8, fin: bool, compressed: bool, payload: &[u8]) {
        let mut frame = vec![(fin as u8) << 7 | (compressed as u8) << 6 | opcode];
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
        let mask = [0x5a, 0x13, 0xc7, 0x02];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.unwrap();
    }

    /// The next frame, or `None` once the server closed the connection.
    pub async fn recv_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buffered) {
                self.buffered.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = tokio::time::timeout(TIMEOUT, self.stream.read(&mut chunk)).await.expect("a frame in time").ok()?;
            if n == 0 {
                return None;
            }
            self.wire_bytes += n;
            self.buffered.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next data frame's message, pings and pongs skipped.
    pub async fn recv_message(&mut self) -> Frame {
        loop {
            let frame = self.recv_frame().await.expect("a message, not the end");
            if frame.opcode != 0x9 && frame.opcode != 0xa {
                return frame;
            }
        }
    }
}

/// A server frame (unmasked) at the front of `buf`, and its length.
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    let (&first, &second) = (buf.first()?, buf.get(1)?);
    let (len, mut at) = match second & 0x7f {
        126 => (u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize, 4),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize, 10),
        len => (len as usize, 2),
    };
    assert_eq!(second & 0x80, 0, "server frames are not masked");
    let payload = buf.get(at..at + len)?.to_vec();
    at += len;
    let frame = Frame { fin: first & 0x80 != 0, compressed: first & 0x40 != 0, opcode: first & 0x0f, payload };
    Some((frame, at))
}

/// One message deflated on its own, as a client without context takeover sends it.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut compressor = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    compressor.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    while compressor.total_in() < data.len() as u64 || !out.ends_with(&TAIL) {
        out.reserve(out.capacity());
        let read = compressor.total_in() as usize;
        compressor.compress_vec(&data[read..], &mut out, FlushCompress::Sync).unwrap();
    }
    out.truncate(out.len() - TAIL.len());
    out
}

/// A compressed message's payload, inflated.
pub fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut inflater = Decompress::new(false);
    let mut out = Vec::with_capacity(payload.len() * 4 + 64);
    loop {
        let read = inflater.total_in() as usize;
        inflater.decompress_vec(&input[read..], &mut out, FlushDecompress::Sync).expect("valid deflate");
        if inflater.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}
