//! A connection's first request head, read before hyper sees the
//! connection. An SSE stream's `GET` is served on the socket itself: hyper
//! would hold its connection's buffers, some 23 KB, for the stream's whole
//! life, where the session needs about one. Anything else goes to hyper
//! with the head put back in front of the stream ([`Rewound`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::request::Parts;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Headers a sniffed request may have; one with more goes to hyper.
const MAX_HEADERS: usize = 64;

/// What the first head turned out to be.
pub enum First<I> {
    /// An SSE stream's request, and the connection to serve it on.
    EventStream(Parts, I),
    /// Anything else, for hyper, the bytes read so far put back.
    Other(Rewound<I>),
}

/// Reads the first head (at most `limit` bytes, within `timeout`). `None`
/// when the client closed, or sent no whole head in time: it is closed, as
/// hyper closes a connection past its header timeout (and hyper's own
/// would start only now).
pub async fn first_request<I>(mut io: I, limit: usize, timeout: Duration) -> Option<First<I>>
where
    I: AsyncRead + Unpin,
{
    let mut read = BytesMut::with_capacity(512);
    let head = tokio::time::timeout(timeout, async {
        loop {
            if let Some(parts) = event_stream_head(&read) {
                return Some(parts);
            }
            if read.len() >= limit || read.windows(4).any(|w| w == b"\r\n\r\n") {
                return None;
            }
            if io.read_buf(&mut read).await.ok()? == 0 {
                return None;
            }
        }
    });
    match head.await {
        Ok(Some((parts, len))) if super::sse::wants_stream(&parts.method, &parts.headers) && read.len() == len => {
            Some(First::EventStream(parts, io))
        }
        Ok(_) if !read.is_empty() => Some(First::Other(Rewound { prefix: read.freeze(), io })),
        Ok(_) | Err(_) => None,
    }
}

/// A whole request head in `buf` that may ask for an event stream, as
/// request parts, and its length. Any other request is hyper's, and is
/// parsed only once, there: a WebSocket upgrade builds no header map here.
pub fn event_stream_head(buf: &[u8]) -> Option<(Parts, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = request.parse(buf).ok()? else { return None };
    let accepts_events = |header: &httparse::Header| {
        header.name.eq_ignore_ascii_case("accept") && header.value.windows(17).any(|w| w == b"text/event-stream")
    };
    if request.version != Some(1) || request.method != Some("GET") || !request.headers.iter().any(accepts_events) {
        return None;
    }
    let mut builder = http::Request::builder().method(request.method?).uri(request.path?);
    for header in request.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    Some((builder.body(()).ok()?.into_parts().0, len))
}

/// A stream with bytes already read from it put back in front.
pub struct Rewound<I> {
    prefix: Bytes,
    io: I,
}

impl<I> Rewound<I> {
    /// The stream, and what of the bytes put back was not read yet.
    pub fn into_parts(self) -> (I, Bytes) {
        (self.io, self.prefix)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewound<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewound<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn an_event_stream_get_is_ours_and_anything_else_is_put_back() {
        let sse = b"GET /chat?resume=1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
        let Some(First::EventStream(parts, _)) = first_request(&sse[..], 8192, Duration::from_secs(1)).await else {
            panic!("an event stream")
        };
        assert_eq!((parts.method.as_str(), parts.uri.to_string()), ("GET", "/chat?resume=1".to_owned()));
        for other in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"POST /send HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            b"GET / HTTP/1.1\r\nAccept: text/event-stream\r\n\r\nGET /pipelined HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01 not http at all\r\n\r\n",
        ] {
            let Some(First::Other(mut rewound)) = first_request(other, 8192, Duration::from_secs(1)).await else {
                panic!("for hyper: {}", String::from_utf8_lossy(other))
            };
            let mut again = Vec::new();
            rewound.read_to_end(&mut again).await.unwrap();
            assert_eq!(again, other, "every byte put back");
        }
        assert!(first_request(&b""[..], 8192, Duration::from_secs(1)).await.is_none());
    }

    #[tokio::test]
    async fn a_head_that_does_not_come_whole_in_time_ends_the_connection() {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b"GET / HTTP/1.1\r\nAccept: text/event-stream\r\n").await.unwrap();
        assert!(first_request(server, 8192, Duration::from_millis(100)).await.is_none());
    }
}
