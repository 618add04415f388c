//! A backend's client for the binary protocol, on one kept-alive
//! connection that it reopens when the router went away.
//!
//! It opens with AUTH `backend+replies`, so the router answers every
//! command: a call returns once its command was applied, with its result,
//! or with the router's error (a store that is down, say). Calls from many
//! tasks share the connection, pipelined: each writes its frames and waits
//! for its replies, which come back in the order the frames went out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

use crate::cmd::{
    Bind, Broadcast, Channel, ChannelSessions, Command, CommandError, Info, Join, Kick, Leave, Members, Payload,
    Publish, SendMsg, SendUser,
};
use crate::{Frame, FrameCodec, FrameError, FrameKind, Hello, SessionId};

const TIMEOUT: Duration = Duration::from_secs(5);
/// Calls waiting for their replies at once; more wait for a place.
const MAX_IN_FLIGHT: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("router {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("router did not answer within {TIMEOUT:?}")]
    Timeout,
    #[error("router closed the connection")]
    Closed,
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The router took the command but could not apply it.
    #[error("router refused the command ({code}): {message}")]
    Refused { code: String, message: String },
}

type Conn = Framed<TcpStream, FrameCodec>;
type Waiter = oneshot::Sender<Frame>;

pub struct RouterClient {
    addr: String,
    /// Sent in the AUTH that opens every connection (empty without one).
    token: Bytes,
    /// Locked only to write a command's frames, in turn.
    link: tokio::sync::Mutex<Option<Link>>,
    in_flight: tokio::sync::Semaphore,
}

/// One connection: its write half, and the calls waiting for replies, in
/// the order their frames went out. `None` once its reader has ended.
struct Link {
    sink: SplitSink<Conn, Frame>,
    waiting: Arc<Mutex<Option<VecDeque<Waiter>>>>,
    reader: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Its waiters hear at once that no reply will come.
        self.reader.abort();
    }
}

impl Link {
    fn is_open(&self) -> bool {
        self.waiting.lock().unwrap().is_some()
    }

    /// Places `n` calls in line for replies; `None` if the connection ended.
    fn wait_for(&self, n: usize) -> Option<Vec<oneshot::Receiver<Frame>>> {
        let mut waiting = self.waiting.lock().unwrap();
        let waiting = waiting.as_mut()?;
        Some(
            (0..n)
                .map(|_| {
                    let (tx, rx) = oneshot::channel();
                    waiting.push_back(tx);
                    rx
                })
                .collect(),
        )
    }
}

/// Hands each reply to the call first in line.
async fn read_replies(mut stream: SplitStream<Conn>, waiting: Arc<Mutex<Option<VecDeque<Waiter>>>>) {
    while let Some(Ok(frame)) = stream.next().await {
        let Some(waiter) = waiting.lock().unwrap().as_mut().and_then(VecDeque::pop_front) else { break };
        let _ = waiter.send(frame);
    }
    waiting.lock().unwrap().take();
}

impl RouterClient {
    pub fn new(addr: impl Into<String>) -> RouterClient {
        RouterClient::with_token(addr, None)
    }

    pub fn with_token(addr: impl Into<String>, token: Option<String>) -> RouterClient {
        RouterClient {
            addr: addr.into(),
            token: token.map(Bytes::from).unwrap_or_default(),
            link: tokio::sync::Mutex::new(None),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// Sends a command and returns the router's reply: its reply frame
    /// (INFO, MEMBERS, COUNT, CHANNELS, ONLINE), or OK with the result as
    /// JSON. A command sent as several frames returns the last reply.
    pub async fn execute(&self, command: &Command) -> Result<Frame, ClientError> {
        let _place = self.in_flight.acquire().await.expect("never closed");
        let frames = command.to_frames();
        let (replies, used) = {
            let mut link = self.link.lock().await;
            if !link.as_ref().is_some_and(Link::is_open) {
                *link = Some(self.connect().await?);
            }
            let open = link.as_mut().expect("just opened");
            let replies = open.wait_for(frames.len()).ok_or(ClientError::Closed)?;
            let used = open.waiting.clone();
            let write = async {
                for frame in frames {
                    open.sink.feed(frame).await?;
                }
                open.sink.flush().await
            };
            match tokio::time::timeout(TIMEOUT, write).await {
                Ok(Ok(())) => (replies, used),
                failed => {
                    *link = None;
                    return Err(failed.map_or(ClientError::Timeout, |e| e.expect_err("failed").into()));
                }
            }
        };
        let mut last = None;
        for reply in replies {
            let frame = match tokio::time::timeout(TIMEOUT, reply).await {
                Ok(Ok(frame)) => frame,
                Ok(Err(_)) => return Err(ClientError::Closed),
                Err(_) => {
                    // The router is stuck: the next call starts afresh,
                    // unless another has already.
                    let mut link = self.link.lock().await;
                    if link.as_ref().is_some_and(|link| Arc::ptr_eq(&link.waiting, &used)) {
                        link.take();
                    }
                    return Err(ClientError::Timeout);
                }
            };
            if frame.kind() == Some(FrameKind::Error) {
                return Err(refusal(&frame.data));
            }
            last = Some(frame);
        }
        Ok(last.expect("a command is at least one frame"))
    }

    async fn connect(&self) -> Result<Link, ClientError> {
        let connect = TcpStream::connect(&self.addr);
        let stream = tokio::time::timeout(TIMEOUT, connect)
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|source| ClientError::Connect { addr: self.addr.clone(), source })?;
        stream.set_nodelay(true).map_err(|source| ClientError::Connect { addr: self.addr.clone(), source })?;
        let (mut sink, stream) = Framed::new(stream, FrameCodec::default()).split();
        sink.send(Hello::Backend { token: self.token.clone(), replies: true }.to_frame()).await?;
        let waiting = Arc::new(Mutex::new(Some(VecDeque::new())));
        let reader = tokio::spawn(read_replies(stream, waiting.clone()));
        Ok(Link { sink, waiting, reader })
    }

    pub async fn send(&self, sessions: Vec<SessionId>, payload: Payload) -> Result<(), ClientError> {
        self.execute(&Command::Send(SendMsg { sessions, payload })).await.map(drop)
    }

    pub async fn broadcast(&self, payload: Payload) -> Result<(), ClientError> {
        self.execute(&Command::Broadcast(Broadcast { payload })).await.map(drop)
    }

    pub async fn kick(&self, sessions: Vec<SessionId>) -> Result<(), ClientError> {
        self.execute(&Command::Kick(Kick { sessions })).await.map(drop)
    }

    pub async fn join(&self, channel: &str, sessions: Vec<SessionId>) -> Result<(), ClientError> {
        let target = ChannelSessions { channel: Channel::new(channel)?, sessions };
        self.execute(&Command::Join(Join::new(target))).await.map(drop)
    }

    pub async fn leave(&self, channel: &str, sessions: Vec<SessionId>) -> Result<(), ClientError> {
        let target = ChannelSessions { channel: Channel::new(channel)?, sessions };
        self.execute(&Command::Leave(Leave(target))).await.map(drop)
    }

    pub async fn publish(&self, channel: &str, payload: Payload) -> Result<(), ClientError> {
        self.execute(&Command::Publish(Publish { channel: Channel::new(channel)?, payload })).await.map(drop)
    }

    pub async fn info(&self) -> Result<String, ClientError> {
        let reply = self.execute(&Command::Info(Info)).await?;
        Ok(String::from_utf8_lossy(&reply.data).into_owned())
    }

    pub async fn bind(&self, session: SessionId, user: &str) -> Result<(), ClientError> {
        self.execute(&Command::Bind(Bind { session, user: user.to_owned() })).await.map(drop)
    }

    pub async fn send_user(&self, user: &str, payload: Payload) -> Result<(), ClientError> {
        self.execute(&Command::SendUser(SendUser { user: user.to_owned(), payload })).await.map(drop)
    }

    pub async fn members(&self, channel: &str) -> Result<Vec<SessionId>, ClientError> {
        let reply = self.execute(&Command::Members(Members { channel: Channel::new(channel)? })).await?;
        Ok(reply.data.chunks(SessionId::LEN).filter_map(|id| SessionId::parse(id).ok()).collect())
    }
}

/// The error an ERROR frame carries (`{"error":{"code","message"}}`).
fn refusal(data: &[u8]) -> ClientError {
    let body: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
    let field = |name: &str| body["error"][name].as_str().unwrap_or("unknown").to_owned();
    ClientError::Refused { code: field("code"), message: field("message") }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;
    use crate::cmd::{error_frame, Count};

    /// A router on real TCP that reads an AUTH, then answers nothing until
    /// it holds `n` commands; then COUNT replies `1`, `2`, ... in order, and
    /// an ERROR for anything else.
    async fn router_answering_after(n: usize) -> (String, tokio::task::JoinHandle<Hello>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let serve = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = Framed::new(stream, FrameCodec::default());
            let hello = Hello::from_frame(&conn.next().await.unwrap().unwrap()).unwrap();
            let mut held = Vec::new();
            while held.len() < n {
                held.push(conn.next().await.unwrap().unwrap());
            }
            for (i, frame) in held.into_iter().enumerate() {
                let reply = match frame.kind() {
                    Some(FrameKind::Count) => {
                        Frame::new(FrameKind::Count, Bytes::new(), Bytes::from((i + 1).to_string()))
                    }
                    _ => error_frame("unavailable", "store down"),
                };
                conn.send(reply).await.unwrap();
            }
            hello
        });
        (addr, serve)
    }

    #[tokio::test]
    async fn callers_share_one_connection_and_each_gets_its_own_reply() {
        let (addr, router) = router_answering_after(3).await;
        let client = Arc::new(RouterClient::with_token(addr, Some("s3cret".into())));
        let calls: Vec<_> = (0..3)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    // In turn, so the replies' order is known.
                    tokio::time::sleep(Duration::from_millis(20 * i)).await;
                    let count = Command::Count(Count { channel: Channel::new("room").unwrap() });
                    client.execute(&count).await.map(|reply| reply.data)
                })
            })
            .collect();
        let mut replies = Vec::new();
        for call in calls {
            replies.push(call.await.unwrap().expect("pipelined: no call waits for another's reply"));
        }
        assert_eq!(replies, [&b"1"[..], b"2", b"3"]);
        assert_eq!(router.await.unwrap(), Hello::Backend { token: Bytes::from_static(b"s3cret"), replies: true });
    }

    #[tokio::test]
    async fn an_error_reply_is_the_call_s_error() {
        let (addr, _router) = router_answering_after(1).await;
        let client = RouterClient::new(addr);
        let err = client.join("room", vec![SessionId::from_u64(1)]).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Refused { code, message } if code == "unavailable" && message == "store down")
        );
    }
}
