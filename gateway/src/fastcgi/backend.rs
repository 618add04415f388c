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
