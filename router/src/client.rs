//! A backend's client for the binary protocol: one kept-alive connection,
//! reopened when the router went away. Speaks the same frames as fooking's
//! PHP `RouterClient`, so it can drive a fooking router too.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_util::codec::Framed;

use crate::cmd::{
    Bind, Broadcast, Channel, ChannelSessions, Command, CommandError, Info, Join, Kick, Leave, Members, Payload,
    Publish, Send, SendUser,
};
use crate::protocol::{Frame, FrameCodec, FrameError, Hello, SessionId};

const TIMEOUT: Duration = Duration::from_secs(5);

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
}

pub struct RouterClient {
    addr: String,
    /// Sent in an AUTH frame first on every connection, when the router has a token.
    token: Option<Bytes>,
    conn: Mutex<Option<Framed<TcpStream, FrameCodec>>>,
}

impl RouterClient {
    pub fn new(addr: impl Into<String>) -> RouterClient {
        RouterClient { addr: addr.into(), token: None, conn: Mutex::new(None) }
    }

    pub fn with_token(addr: impl Into<String>, token: Option<String>) -> RouterClient {
        RouterClient { token: token.map(Bytes::from), ..RouterClient::new(addr) }
    }

    /// Sends a command; returns the router's reply frame for the commands
    /// that have one (INFO, MEMBERS, COUNT, CHANNELS, ONLINE).
    pub async fn execute(&self, command: &Command) -> Result<Option<Frame>, ClientError> {
        let mut guard = self.conn.lock().await;
        let conn = match guard.take().filter(|conn| crate::runtime::still_open(conn.get_ref())) {
            Some(conn) => guard.insert(conn),
            None => guard.insert(self.connect().await?),
        };
        let result = tokio::time::timeout(TIMEOUT, exchange(conn, command)).await.unwrap_or(Err(ClientError::Timeout));
        if result.is_err() {
            *guard = None;
        }
        result
    }

    async fn connect(&self) -> Result<Framed<TcpStream, FrameCodec>, ClientError> {
        let connect = TcpStream::connect(&self.addr);
        let stream = tokio::time::timeout(TIMEOUT, connect)
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|source| ClientError::Connect { addr: self.addr.clone(), source })?;
        stream.set_nodelay(true).map_err(|source| ClientError::Connect { addr: self.addr.clone(), source })?;
        let mut conn = Framed::new(stream, FrameCodec::default());
        if let Some(token) = &self.token {
            conn.send(Hello::Backend { token: token.clone() }.to_frame()).await?;
        }
        Ok(conn)
    }

    pub async fn send(&self, sessions: Vec<SessionId>, payload: Payload) -> Result<(), ClientError> {
        self.execute(&Command::Send(Send { sessions, payload })).await.map(drop)
    }

    pub async fn broadcast(&self, payload: Payload) -> Result<(), ClientError> {
        self.execute(&Command::Broadcast(Broadcast { payload })).await.map(drop)
    }

    pub async fn kick(&self, sessions: Vec<SessionId>) -> Result<(), ClientError> {
        self.execute(&Command::Kick(Kick { sessions })).await.map(drop)
    }

    pub async fn join(&self, channel: &str, sessions: Vec<SessionId>) -> Result<(), ClientError> {
        let target = ChannelSessions { channel: Channel::new(channel)?, sessions };
        self.execute(&Command::Join(Join(target))).await.map(drop)
    }

    pub async fn leave(&self, channel: &str, sessions: Vec<SessionId>) -> Result<(), ClientError> {
        let target = ChannelSessions { channel: Channel::new(channel)?, sessions };
        self.execute(&Command::Leave(Leave(target))).await.map(drop)
    }

    pub async fn publish(&self, channel: &str, payload: Payload) -> Result<(), ClientError> {
        self.execute(&Command::Publish(Publish { channel: Channel::new(channel)?, payload })).await.map(drop)
    }

    pub async fn info(&self) -> Result<String, ClientError> {
        let reply = self.execute(&Command::Info(Info)).await?.ok_or(ClientError::Closed)?;
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
        let data = reply.ok_or(ClientError::Closed)?.data;
        Ok(data.chunks(SessionId::LEN).filter_map(|id| SessionId::parse(id).ok()).collect())
    }
}

async fn exchange(conn: &mut Framed<TcpStream, FrameCodec>, command: &Command) -> Result<Option<Frame>, ClientError> {
    for frame in command.to_frames() {
        conn.feed(frame).await?;
    }
    conn.flush().await?;
    let replies = matches!(
        command,
        Command::Info(_) | Command::Members(_) | Command::Count(_) | Command::Channels(_) | Command::Online(_)
    );
    if !replies {
        return Ok(None);
    }
    Ok(Some(conn.next().await.ok_or(ClientError::Closed)??))
}
