//! One FastCGI backend: kept-alive connections with one request in flight
//! on each (as nginx does; php-fpm and tokio-fastcgi need it), so request
//! id 1 is always free on the connection used.

use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::codec::{RecordCodec, RecordError, RecordType};
use super::CgiResponse;

/// The request id every request uses: one request per connection at a time.
pub const REQUEST_ID: u16 = 1;

#[derive(Debug, Clone)]
pub struct BackendOptions {
    pub connect_timeout: Duration,
    /// From the request's write until END_REQUEST.
    pub response_timeout: Duration,
    /// Kept-alive connections held while idle.
    pub max_idle: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("backend {addr} unreachable: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("backend {addr} did not accept a connection within {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("backend {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("backend {addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

type Conn = Framed<TcpStream, RecordCodec>;

pub struct Backend {
    addr: String,
    options: BackendOptions,
    idle: Mutex<Vec<Conn>>,
}

impl Backend {
    pub fn new(addr: impl Into<String>, options: BackendOptions) -> Backend {
        Backend { addr: addr.into(), options, idle: Mutex::new(Vec::new()) }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Runs one encoded request (see [`super::encode_request`]) and returns
    /// the app's response. `label` tags the app's STDERR lines in our log.
    pub async fn call(&self, request: &[u8], label: &str) -> Result<CgiResponse, UpstreamError> {
        let mut conn = match self.take_idle() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let timeout = self.options.response_timeout;
        let exchange = tokio::time::timeout(timeout, self.exchange(&mut conn, request, label));
        let response = exchange.await.map_err(|_| UpstreamError::Timeout { addr: self.addr.clone(), timeout })??;
        self.put_idle(conn);
        Ok(response)
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap();
        while let Some(conn) = idle.pop() {
            if router::runtime::still_open(conn.get_ref()) {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < self.options.max_idle {
            idle.push(conn);
        }
    }

    async fn connect(&self) -> Result<Conn, UpstreamError> {
        let timeout = self.options.connect_timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout { addr: self.addr.clone(), timeout })?
            .map_err(|source| UpstreamError::Connect { addr: self.addr.clone(), source })?;
        // Without it a kept-alive request waits for the peer's delayed ACK.
        stream.set_nodelay(true).map_err(|source| UpstreamError::Connect { addr: self.addr.clone(), source })?;
        Ok(Framed::new(stream, RecordCodec))
    }

    async fn exchange(&self, conn: &mut Conn, request: &[u8], label: &str) -> Result<CgiResponse, UpstreamError> {
        let protocol = |reason: String| UpstreamError::Protocol { addr: self.addr.clone(), reason };
        conn.get_mut().write_all(request).await.map_err(|e| protocol(format!("write failed: {e}")))?;
        let mut stdout = BytesMut::new();
        loop {
            let record = match conn.next().await {
                Some(Ok(record)) => record,
                Some(Err(RecordError::Io(e))) => return Err(protocol(format!("read failed: {e}"))),
                Some(Err(e)) => return Err(protocol(e.to_string())),
                None => return Err(protocol("closed the connection before END_REQUEST".into())),
            };
            if record.request_id != REQUEST_ID {
                continue;
            }
            if record.is(RecordType::Stdout) {
                stdout.extend_from_slice(&record.content);
            } else if record.is(RecordType::Stderr) && !record.content.is_empty() {
                let text = String::from_utf8_lossy(&record.content);
                tracing::warn!(session = label, backend = %self.addr, "app stderr: {}", text.trim_end());
            } else if record.is(RecordType::EndRequest) {
                return CgiResponse::parse(Bytes::from(stdout)).map_err(protocol);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use futures_util::SinkExt;
    use tokio::net::TcpListener;
    use tokio_util::codec::Encoder;

    use super::*;
    use crate::fastcgi::{encode_request, ParamBlock, Record};

    fn options() -> BackendOptions {
        BackendOptions {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(500),
            max_idle: 4,
        }
    }

    fn request(body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        let mut params = ParamBlock::default();
        params.push(b"SESSIONID", b"0000000000000001").unwrap();
        encode_request(&mut buf, REQUEST_ID, &[&params], body);
        buf
    }

    /// A FastCGI peer on real TCP that answers each request with `records`
    /// (STDOUT pieces, then END_REQUEST), counting connections.
    async fn backend_answering(
        pieces: &'static [&'static [u8]],
    ) -> (String, Arc<AtomicUsize>, tokio::sync::mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (seen_tx, seen) = tokio::sync::mpsc::channel(16);
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let seen_tx = seen_tx.clone();
                tokio::spawn(async move {
                    let mut conn = Framed::new(stream, RecordCodec);
                    let mut raw = BytesMut::new();
                    while let Some(Ok(record)) = conn.next().await {
                        RecordCodec.encode(record.clone(), &mut raw).unwrap();
                        if record.is(RecordType::Stdin) && record.content.is_empty() {
                            seen_tx.send(raw.split().to_vec()).await.unwrap();
                            for piece in pieces {
                                let out = Record {
                                    kind: RecordType::Stdout as u8,
                                    request_id: REQUEST_ID,
                                    content: Bytes::from_static(piece),
                                };
                                conn.send(out).await.unwrap();
                            }
                            let stderr = Record {
                                kind: RecordType::Stderr as u8,
                                request_id: REQUEST_ID,
                                content: Bytes::new(),
                            };
                            conn.send(stderr).await.unwrap();
                            let end = Record {
                                kind: RecordType::EndRequest as u8,
                                request_id: REQUEST_ID,
                                content: Bytes::from_static(&[0; 8]),
                            };
                            conn.send(end).await.unwrap();
                        }
                    }
                });
            }
        });
        (addr, accepted, seen)
    }

    #[tokio::test]
    async fn keeps_connections_alive_and_joins_stdout_records() {
        let (addr, accepted, mut seen) = backend_answering(&[b"Content-Type: text/plain\r\n", b"\r\nhel", b"lo"]).await;
        let backend = Backend::new(addr, options());
        for body in [&b"one"[..], b"two", b"three"] {
            let sent = request(body);
            let response = backend.call(&sent, "test").await.unwrap();
            assert_eq!(&response.body[..], b"hello");
            assert_eq!(seen.recv().await.unwrap(), sent.to_vec(), "the backend got the request as encoded");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "three requests, one kept-alive connection");
    }

    #[tokio::test]
    async fn sets_tcp_nodelay() {
        let (addr, _, _) = backend_answering(&[]).await;
        let conn = Backend::new(addr, options()).connect().await.unwrap();
        assert!(conn.get_ref().nodelay().unwrap());
    }

    #[tokio::test]
    async fn a_backend_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let _hold = tokio::spawn(async move {
            let (_stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let err = Backend::new(addr, options()).call(&request(b"x"), "test").await.unwrap_err();
        assert!(matches!(err, UpstreamError::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let err = Backend::new(format!("127.0.0.1:{port}"), options()).call(&request(b"x"), "test").await.unwrap_err();
        assert!(matches!(err, UpstreamError::Connect { .. }), "{err}");
    }
}
