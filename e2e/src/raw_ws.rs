//! The frame-level WebSocket client (loadgen's, with permessage-deflate)
//! as a test uses it: connected to a local port, replies within a timeout.

pub use loadgen::raw_ws::{deflate, Frame, RawWebSocket, TEXT};

use crate::ws::RECV_TIMEOUT;

/// Upgrades on `port` with `extensions` as `Sec-WebSocket-Extensions`.
pub async fn connect(port: u16, extensions: &str) -> RawWebSocket {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    RawWebSocket::connect(stream, &format!("ws://127.0.0.1:{port}/"), extensions).await.unwrap()
}

/// The next frame other than a ping or pong.
pub async fn recv_message(client: &mut RawWebSocket) -> Frame {
    loop {
        let frame = tokio::time::timeout(RECV_TIMEOUT, client.recv_frame()).await.expect("a frame in time").unwrap();
        let frame = frame.expect("a frame, not the end");
        if frame.opcode != 0x9 && frame.opcode != 0xa {
            return frame;
        }
    }
}
