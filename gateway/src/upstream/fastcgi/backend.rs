//! One FastCGI backend: its kept-alive connections, with one request in
//! flight on each (as nginx does; php-fpm and tokio-fastcgi need it), and
//! its health.
//!
//! Every open connection, busy or idle, holds one of the backend's
//! `max_conns` permits, so the cap is on sockets, not on requests.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::codec::{encode_abort, RecordCodec, RecordError, RecordType};
use super::CgiResponse;

/// The request id every request uses: one request per connection at a time.
pub const REQUEST_ID: u16 = 1;

/// Fires when the client a request is for has left.
pub type Abort = Option<tokio::sync::oneshot::Receiver<()>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(addr) => f.write_str(addr),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Address, String> {
        match s.strip_prefix("unix:") {
            Some("") => Err("unix: needs a socket path".into()),
            Some(path) => Ok(Address::Unix(path.into())),
            None if s.contains(':') => Ok(Address::Tcp(s.to_owned())),
            None => Err(format!("{s}: expected HOST:PORT or unix:/path")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BackendOptions {
    pub connect_timeout: Duration,
    /// From the request's write until END_REQUEST.
    pub response_timeout: Duration,
    /// Open connections at most, busy or idle.
    pub max_conns: usize,
    /// Keep connections between requests, or open one per request
    /// (`keep_conn=off`: no FCGI_KEEP_CONN; the backend closes it).
    pub keep_conn: bool,
    /// Failures in a row that eject the backend.
    pub max_fails: u32,
    /// How long an ejected backend is skipped before it is tried again.
    pub fail_timeout: Duration,
    /// The largest response taken, STDOUT bytes.
    pub max_response: usize,
    /// The level at which the app's STDERR lines are logged.
    pub stderr_level: tracing::Level,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("backend {addr} unreachable: {source}")]
    Connect { addr: Address, source: io::Error },
    #[error("backend {addr} did not accept a connection within {timeout:?}")]
    ConnectTimeout { addr: Address, timeout: Duration },
    #[error("backend {addr} has all {max_conns} connections busy")]
    AtCapacity { addr: Address, max_conns: usize },
    #[error("backend {addr} did not answer within {timeout:?}")]
    Timeout { addr: Address, timeout: Duration },
    #[error("backend {addr}: {reason}")]
    Protocol { addr: Address, reason: String },
    /// The connection broke before any byte of an answer came back.
    #[error("backend {addr} did not answer: {reason}")]
    Unanswered { addr: Address, reason: String },
    /// END_REQUEST said the request was not taken (FastCGI protocolStatus).
    #[error("backend {addr} refused the request: {reason}")]
    Refused { addr: Address, reason: &'static str },
    #[error("backend {addr} sent more than {max} bytes (--max-response-bytes); the request failed")]
    ResponseTooLarge { addr: Address, max: usize },
}

impl UpstreamError {
    /// Whether the request never left: then another backend may take it.
    pub fn before_send(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect { .. } | UpstreamError::ConnectTimeout { .. } | UpstreamError::AtCapacity { .. }
        )
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Timeout { .. })
    }

    /// Whether the backend looks down: it could not be reached, or it
    /// dropped the request without a word. Such a request may be sent again.
    pub fn backend_down(&self) -> bool {
        self.before_send() || matches!(self, UpstreamError::Unanswered { .. } | UpstreamError::Refused { .. })
    }
}

/// A backend connection over TCP or a unix socket.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// A kept connection the backend has closed reads as EOF: drop it
    /// rather than send a request into it.
    fn still_open(&self) -> bool {
        let mut probe = [0u8; 1];
        let read = match self {
            Stream::Tcp(s) => s.try_read(&mut probe),
            Stream::Unix(s) => s.try_read(&mut probe),
        };
        matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => $call,
            Stream::Unix($s) => $call,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// An open connection and the permit it holds.
struct Conn {
    framed: Framed<Stream, RecordCodec>,
    _permit: OwnedSemaphorePermit,
    /// Taken from the idle list: the backend may have closed it meanwhile.
    reused: bool,
}

/// A connection's read buffer while it is in use.
const READ_BUFFER: usize = 8 * 1024;

impl Conn {
    /// Requests are written straight to the stream: the codec's write
    /// buffer is never used, and an idle connection keeps no read buffer
    /// (a pool of hundreds would hold 16 KB each).
    fn new(stream: Stream, permit: OwnedSemaphorePermit) -> Conn {
        let mut framed = Framed::new(stream, RecordCodec);
        *framed.write_buffer_mut() = BytesMut::new();
        Conn { framed, _permit: permit, reused: false }
    }

    /// Gives back its read buffer, if nothing waits in it, until it is used again.
    fn rest(&mut self) {
        if self.framed.read_buffer().is_empty() {
            *self.framed.read_buffer_mut() = BytesMut::new();
        }
    }
}

/// How an exchange left its connection.
#[derive(Default)]
struct Exchanged {
    /// Some answer record arrived.
    answered: bool,
    /// It carried FCGI_ABORT_REQUEST. php-fpm runs the script to its end
    /// anyway, then reads the abort as the next request's first record and
    /// closes the connection; tokio-fastcgi answers it with a second
    /// END_REQUEST. Either way the connection is out of step: never reused.
    aborted: bool,
}

pub struct Backend {
    addr: Address,
    weight: u32,
    options: BackendOptions,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    /// Told when a connection comes back or closes, for requests waiting at the cap.
    returned: Notify,
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    /// Requests that failed, and those of them that timed out, since start.
    failed: std::sync::atomic::AtomicU64,
    timed_out: std::sync::atomic::AtomicU64,
}

impl Backend {
    pub fn new(addr: Address, weight: u32, options: BackendOptions) -> Backend {
        Backend {
            addr,
            weight: weight.max(1),
            permits: Arc::new(Semaphore::new(options.max_conns.max(1))),
            options,
            idle: Mutex::new(Vec::new()),
            returned: Notify::new(),
            failures: AtomicU32::new(0),
            ejected_until: Mutex::new(None),
            failed: Default::default(),
            timed_out: Default::default(),
        }
    }

    pub fn addr(&self) -> &Address {
        &self.addr
    }

    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Skipped while ejected; tried again (one probe at a time is enough)
    /// once the fail timeout has passed.
    pub fn is_ejected(&self) -> bool {
        self.ejected_until.lock().unwrap().is_some_and(|until| Instant::now() < until)
    }

    /// Requests that failed since start, and those of them that timed out.
    pub fn failures_total(&self) -> (u64, u64) {
        (self.failed.load(Ordering::Relaxed), self.timed_out.load(Ordering::Relaxed))
    }

    pub fn open_connections(&self) -> usize {
        self.options.max_conns.max(1) - self.permits.available_permits()
    }

    /// Runs one encoded request (see [`super::encode_request`]) and returns
    /// the app's response. `label` tags the app's STDERR lines in our log.
    /// `abort` fires if the client leaves while the request is out: the
    /// backend is then sent FCGI_ABORT_REQUEST, and its answer still read
    /// to the end so the connection stays in step.
    pub async fn call(&self, request: &[u8], label: &str, abort: &mut Abort) -> Result<CgiResponse, UpstreamError> {
        let result = self.try_call(request, label, abort).await;
        match &result {
            Ok(_) => self.failures.store(0, Ordering::Relaxed),
            Err(UpstreamError::AtCapacity { .. }) => {}
            Err(err) => self.record_failure(err),
        }
        result
    }

    /// A kept-alive connection that broke before any byte of an answer
    /// came back (the backend closed it as we sent) gets the request again
    /// on a new connection: the backend never answered it.
    async fn try_call(&self, request: &[u8], label: &str, abort: &mut Abort) -> Result<CgiResponse, UpstreamError> {
        let once;
        let request = match self.options.keep_conn {
            true => request,
            false => {
                once = super::codec::without_keep_conn(request);
                &once[..]
            }
        };
        let mut conn = self.checkout(!self.options.keep_conn).await?;
        loop {
            let timeout = self.options.response_timeout;
            let mut exchanged = Exchanged::default();
            let exchange = self.exchange(&mut conn.framed, request, label, abort, &mut exchanged);
            let result = tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or_else(|_| Err(UpstreamError::Timeout { addr: self.addr.clone(), timeout }));
            let retry = conn.reused && !exchanged.answered && matches!(result, Err(UpstreamError::Unanswered { .. }));
            if result.is_ok() && !exchanged.aborted && self.options.keep_conn {
                conn.rest();
                self.idle.lock().unwrap().push(conn);
            } else {
                // A failed connection may hold half an answer: never reuse it.
                drop(conn);
            }
            self.returned.notify_one();
            if !retry {
                return result;
            }
            tracing::debug!(session = label, backend = %self.addr, "kept connection was closed: sending again on a new one");
            conn = self.checkout(true).await?;
        }
    }

    fn record_failure(&self, err: &UpstreamError) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if matches!(err, UpstreamError::Timeout { .. }) {
            self.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.options.max_fails {
            *self.ejected_until.lock().unwrap() = Some(Instant::now() + self.options.fail_timeout);
            self.failures.store(0, Ordering::Relaxed);
            tracing::warn!(backend = %self.addr, %err, failures, "backend ejected for {:?}", self.options.fail_timeout);
        }
    }

    /// An idle connection (unless `fresh`), or a new one if under the cap;
    /// at the cap, waits (up to the connect timeout) for one to come back.
    async fn checkout(&self, fresh: bool) -> Result<Conn, UpstreamError> {
        let deadline = Instant::now() + self.options.connect_timeout;
        loop {
            if let Some(conn) = if fresh { None } else { self.take_idle() } {
                return Ok(conn);
            }
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return self.connect(permit).await;
            }
            let at_capacity =
                || UpstreamError::AtCapacity { addr: self.addr.clone(), max_conns: self.options.max_conns };
            tokio::time::timeout_at(deadline, self.returned.notified()).await.map_err(|_| at_capacity())?;
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap();
        while let Some(mut conn) = idle.pop() {
            if conn.framed.get_ref().still_open() {
                conn.reused = true;
                conn.framed.read_buffer_mut().reserve(READ_BUFFER);
                return Some(conn);
            }
            self.returned.notify_one();
        }
        None
    }

    async fn connect(&self, permit: OwnedSemaphorePermit) -> Result<Conn, UpstreamError> {
        let timeout = self.options.connect_timeout;
        let connect = async {
            match &self.addr {
                Address::Tcp(addr) => {
                    let stream = TcpStream::connect(addr).await?;
                    // Without it a kept-alive request waits for the peer's delayed ACK.
                    stream.set_nodelay(true)?;
                    Ok(Stream::Tcp(stream))
                }
                Address::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
            }
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| UpstreamError::ConnectTimeout { addr: self.addr.clone(), timeout })?
            .map_err(|source: io::Error| UpstreamError::Connect { addr: self.addr.clone(), source })?;
        Ok(Conn::new(stream, permit))
    }

    async fn exchange(
        &self,
        conn: &mut Framed<Stream, RecordCodec>,
        request: &[u8],
        label: &str,
        abort: &mut Abort,
        exchanged: &mut Exchanged,
    ) -> Result<CgiResponse, UpstreamError> {
        let protocol = |reason: String| UpstreamError::Protocol { addr: self.addr.clone(), reason };
        let unanswered = |reason: String| UpstreamError::Unanswered { addr: self.addr.clone(), reason };
        conn.get_mut().write_all(request).await.map_err(|e| unanswered(format!("write failed: {e}")))?;
        let mut stdout = BytesMut::new();
        loop {
            let next = tokio::select! {
                next = conn.next() => next,
                Ok(()) = async { abort.as_mut().expect("guarded").await }, if abort.is_some() => {
                    *abort = None;
                    exchanged.aborted = true;
                    let mut record = BytesMut::new();
                    encode_abort(&mut record, REQUEST_ID);
                    conn.get_mut().write_all(&record).await.map_err(|e| protocol(format!("write failed: {e}")))?;
                    tracing::debug!(session = label, backend = %self.addr, "client left: request aborted");
                    continue;
                }
            };
            let broken = |reason: String| if exchanged.answered { protocol(reason) } else { unanswered(reason) };
            let record = match next {
                Some(Ok(record)) => record,
                Some(Err(RecordError::Io(e))) => return Err(broken(format!("read failed: {e}"))),
                Some(Err(e)) => return Err(protocol(e.to_string())),
                None => return Err(broken("closed the connection before END_REQUEST".into())),
            };
            exchanged.answered = true;
            if record.request_id != REQUEST_ID {
                continue;
            }
            if record.is(RecordType::Stdout) {
                let max = self.options.max_response;
                if stdout.len() + record.content.len() > max {
                    return Err(UpstreamError::ResponseTooLarge { addr: self.addr.clone(), max });
                }
                stdout.extend_from_slice(&record.content);
            } else if record.is(RecordType::Stderr) && !record.content.is_empty() {
                let text = String::from_utf8_lossy(&record.content);
                log_stderr(self.options.stderr_level, label, &self.addr, text.trim_end());
            } else if record.is(RecordType::EndRequest) {
                // appStatus (4 bytes), then protocolStatus: 0 is REQUEST_COMPLETE.
                let refused = match record.content.get(4).copied().unwrap_or(0) {
                    0 => return CgiResponse::parse(Bytes::from(stdout)).map_err(protocol),
                    1 => "it cannot multiplex (CANT_MPX_CONN)",
                    2 => "it is overloaded (OVERLOADED)",
                    3 => "unknown role (UNKNOWN_ROLE)",
                    _ => "an unknown protocol status",
                };
                return Err(UpstreamError::Refused { addr: self.addr.clone(), reason: refused });
            }
        }
    }
}

/// Logs one of the app's STDERR records at `level`, which the operator
/// chose (tracing's macros take their level as a constant).
fn log_stderr(level: tracing::Level, session: &str, backend: &Address, text: &str) {
    match level {
        tracing::Level::ERROR => tracing::error!(session, %backend, "app stderr: {text}"),
        tracing::Level::WARN => tracing::warn!(session, %backend, "app stderr: {text}"),
        tracing::Level::INFO => tracing::info!(session, %backend, "app stderr: {text}"),
        tracing::Level::DEBUG => tracing::debug!(session, %backend, "app stderr: {text}"),
        tracing::Level::TRACE => tracing::trace!(session, %backend, "app stderr: {text}"),
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
    use crate::upstream::fastcgi::{encode_request, ParamBlock, Record};

    fn options() -> BackendOptions {
        BackendOptions {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(500),
            max_conns: 4,
            keep_conn: true,
            max_fails: 2,
            fail_timeout: Duration::from_secs(60),
            max_response: 1 << 16,
            stderr_level: tracing::Level::WARN,
        }
    }

    fn backend(addr: String) -> Backend {
        Backend::new(Address::Tcp(addr), 1, options())
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

    /// A FastCGI peer on real TCP that answers `answers` requests on each
    /// connection, `delay` after each arrives, then closes the connection
    /// when the next one comes. Counts connections.
    async fn backend_closing_after(answers: usize, delay: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut conn = Framed::new(stream, RecordCodec);
                    let mut answered = 0;
                    while let Some(Ok(record)) = conn.next().await {
                        if !(record.is(RecordType::Stdin) && record.content.is_empty()) {
                            continue;
                        }
                        if answered == answers {
                            return;
                        }
                        tokio::time::sleep(delay).await;
                        answered += 1;
                        let mut out = BytesMut::new();
                        crate::upstream::fastcgi::encode_response(
                            &mut out,
                            REQUEST_ID,
                            b"Content-Type: text/plain\r\n\r\nok",
                            0,
                        );
                        conn.get_mut().write_all(&out).await.unwrap();
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn a_kept_connection_the_backend_closed_unanswered_is_retried_on_a_new_one() {
        let (addr, accepted) = backend_closing_after(1, Duration::ZERO).await;
        let backend = backend(addr);
        backend.call(&request(b"one"), "test", &mut None).await.unwrap();
        let second = backend.call(&request(b"two"), "test", &mut None).await.unwrap();
        assert_eq!(&second.body[..], b"ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "sent again on a new connection");
    }

    #[tokio::test]
    async fn keep_conn_off_opens_a_connection_per_request_without_fcgi_keep_conn() {
        let (addr, accepted, mut seen) = backend_answering(&[b"Content-Type: text/plain\r\n\r\nok"]).await;
        let backend = Backend::new(Address::Tcp(addr), 1, BackendOptions { keep_conn: false, ..options() });
        for _ in 0..3 {
            let answer = backend.call(&request(b"x"), "test", &mut None).await.unwrap();
            assert_eq!(&answer.body[..], b"ok");
            let sent = seen.recv().await.unwrap();
            assert_eq!(sent[8 + 2] & 1, 0, "BEGIN_REQUEST (its 8-byte header, its role) without FCGI_KEEP_CONN");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "a connection per request");
        assert_eq!(backend.open_connections(), 0, "none kept");
    }

    #[tokio::test]
    async fn a_new_connection_closed_unanswered_is_an_error_not_a_retry() {
        let (addr, accepted) = backend_closing_after(0, Duration::ZERO).await;
        let err = backend(addr).call(&request(b"x"), "test", &mut None).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Unanswered { .. }) && err.backend_down(), "{err}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_that_carried_an_abort_is_never_reused() {
        let (addr, accepted) = backend_closing_after(usize::MAX, Duration::from_millis(50)).await;
        let backend = backend(addr);
        let (left, abort) = tokio::sync::oneshot::channel();
        left.send(()).unwrap();
        let answer = backend.call(&request(b"one"), "test", &mut Some(abort)).await.unwrap();
        assert_eq!(&answer.body[..], b"ok", "the answer is still read to its end");
        backend.call(&request(b"two"), "test", &mut None).await.unwrap();
        backend.call(&request(b"three"), "test", &mut None).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection after the abort, then kept");
    }

    /// A peer that answers every request with `end` after `stdout`.
    async fn backend_ending_with(stdout: &'static [u8], end: [u8; 8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = Framed::new(stream, RecordCodec);
            while let Some(Ok(record)) = conn.next().await {
                if record.is(RecordType::Stdin) && record.content.is_empty() {
                    let stdout =
                        Record { kind: RecordType::Stdout as u8, request_id: REQUEST_ID, content: stdout.into() };
                    conn.send(stdout).await.unwrap();
                    let end = Record {
                        kind: RecordType::EndRequest as u8,
                        request_id: REQUEST_ID,
                        content: end.to_vec().into(),
                    };
                    conn.send(end).await.unwrap();
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_response_past_the_bound_fails_and_a_refusal_is_a_failure() {
        static BIG: [u8; 1 << 17] = [b'x'; 1 << 17];
        let err = backend(backend_ending_with(&BIG, [0; 8]).await).call(&request(b"x"), "test", &mut None).await;
        assert!(matches!(err, Err(UpstreamError::ResponseTooLarge { max: 65536, .. })), "{err:?}");
        let overloaded = backend_ending_with(b"", [0, 0, 0, 0, 2, 0, 0, 0]).await;
        let err = backend(overloaded).call(&request(b"x"), "test", &mut None).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Refused { .. }) && err.backend_down(), "{err}");
    }

    #[tokio::test]
    async fn keeps_connections_alive_and_joins_stdout_records() {
        let (addr, accepted, mut seen) = backend_answering(&[b"Content-Type: text/plain\r\n", b"\r\nhel", b"lo"]).await;
        let backend = backend(addr);
        for body in [&b"one"[..], b"two", b"three"] {
            let sent = request(body);
            let response = backend.call(&sent, "test", &mut None).await.unwrap();
            assert_eq!(&response.body[..], b"hello");
            assert_eq!(seen.recv().await.unwrap(), sent.to_vec(), "the backend got the request as encoded");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "three requests, one kept-alive connection");
    }

    #[tokio::test]
    async fn sets_tcp_nodelay() {
        let (addr, _, _) = backend_answering(&[]).await;
        let conn = backend(addr).checkout(false).await.unwrap();
        assert!(matches!(conn.framed.get_ref(), Stream::Tcp(tcp) if tcp.nodelay().unwrap()));
    }

    #[test]
    fn addresses_parse() {
        assert_eq!("127.0.0.1:9001".parse(), Ok(Address::Tcp("127.0.0.1:9001".into())));
        assert_eq!("unix:/run/php.sock".parse(), Ok(Address::Unix("/run/php.sock".into())));
        assert!("unix:".parse::<Address>().is_err());
        assert!("localhost".parse::<Address>().is_err());
    }

    #[tokio::test]
    async fn a_backend_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let _hold = tokio::spawn(async move {
            let (_stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let err = backend(addr).call(&request(b"x"), "test", &mut None).await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let backend = backend(format!("127.0.0.1:{port}"));
        let err = backend.call(&request(b"x"), "test", &mut None).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Connect { .. }) && err.before_send(), "{err}");
        assert!(!backend.is_ejected(), "one failure of two allowed");
        backend.call(&request(b"x"), "test", &mut None).await.unwrap_err();
        assert!(backend.is_ejected(), "the second failure in a row ejects it");
    }

    #[tokio::test]
    async fn at_the_connection_cap_requests_wait_for_a_connection() {
        let (addr, accepted, _seen) = backend_answering(&[b"Content-Type: text/plain\r\n\r\nok"]).await;
        let backend =
            std::sync::Arc::new(Backend::new(Address::Tcp(addr), 1, BackendOptions { max_conns: 2, ..options() }));
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let backend = backend.clone();
                tokio::spawn(async move { backend.call(&request(format!("{i}").as_bytes()), "test", &mut None).await })
            })
            .collect();
        for call in calls {
            assert_eq!(&call.await.unwrap().unwrap().body[..], b"ok");
        }
        assert!(accepted.load(Ordering::SeqCst) <= 2, "never more than max_conns sockets");
        assert!(backend.open_connections() <= 2);
    }
}
