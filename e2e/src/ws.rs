//! A WebSocket client as a test sees it: send JSON, receive JSON, watch
//! for the close frame.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        Client::connect_with_headers(url, &[]).await
    }

    pub async fn connect_with_headers(url: &str, headers: &[(&'static str, &str)]) -> Client {
        Client::try_connect(url, headers, None).await.unwrap_or_else(|e| panic!("connect {url}: {e}"))
    }

    /// Connects with `headers`, from `source` if given; the error says
    /// what the server answered instead of upgrading.
    pub async fn try_connect(
        url: &str,
        headers: &[(&'static str, &str)],
        source: Option<std::net::IpAddr>,
    ) -> Result<Client, String> {
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().append(*name, value.parse().unwrap());
        }
        let authority = request.uri().authority().unwrap().as_str().to_owned();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(ip) = source {
            socket.bind(std::net::SocketAddr::new(ip, 0)).unwrap();
        }
        let stream = socket.connect(authority.parse().unwrap()).await.map_err(|e| e.to_string())?;
        let (ws, _) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await.map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(response) => format!("HTTP {}", response.status().as_u16()),
                other => other.to_string(),
            })?;
        Ok(Client { ws })
    }

    /// The client's own port, as the gateway sees it in `REMOTE_PORT`.
    pub fn local_port(&self) -> u16 {
        match self.ws.get_ref() {
            MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap().port(),
            _ => unreachable!("tests use plain TCP"),
        }
    }

    pub async fn send(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send(Message::text(value.to_string())).await;
    }

    /// The next data message, skipping pings and pongs.
    pub async fn recv(&mut self) -> Message {
        loop {
            let next = tokio::time::timeout(RECV_TIMEOUT, self.ws.next()).await.expect("no message within the timeout");
            match next.expect("connection ended").expect("connection failed") {
                Message::Ping(_) | Message::Pong(_) => continue,
                message => return message,
            }
        }
    }

    /// The next message of any kind but ping and pong, close frames included.
    pub async fn recv_any(&mut self) -> Message {
        loop {
            let next = tokio::time::timeout(RECV_TIMEOUT, self.ws.next()).await.expect("nothing within the timeout");
            match next.expect("connection ended").expect("connection failed") {
                Message::Ping(_) | Message::Pong(_) => continue,
                message => return message,
            }
        }
    }

    /// The text messages before one that reads `end`, which ends them.
    pub async fn recv_until(&mut self, end: &str) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            let text = self.recv().await.into_text().expect("a text message").to_string();
            if text == end {
                return got;
            }
            got.push(text);
        }
    }

    pub async fn recv_json(&mut self) -> Value {
        match self.recv().await {
            Message::Text(text) => serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// The next text message as JSON if one has come already, without
    /// waiting (pings and pongs are passed over).
    pub fn try_recv_json(&mut self) -> Option<Value> {
        use futures_util::FutureExt;
        loop {
            match self.ws.next().now_or_never()?? {
                Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The next `n` JSON messages, in a stable order (for messages whose
    /// relative order the protocol does not fix).
    pub async fn recv_json_unordered(&mut self, n: usize) -> Vec<Value> {
        let mut got = Vec::new();
        for _ in 0..n {
            got.push(self.recv_json().await);
        }
        got.sort_by_key(|v| v.to_string());
        got
    }

    /// Asserts no data message arrives for a while (pings are answered).
    pub async fn expect_silence(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
                panic!("expected nothing, got {message:?}");
            }
        }
    }

    /// Waits for the server's close frame; returns it.
    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        loop {
            let next = tokio::time::timeout(RECV_TIMEOUT, self.ws.next()).await.expect("no close within the timeout");
            match next {
                Some(Ok(Message::Close(frame))) => {
                    // Reading on lets tungstenite answer, completing the handshake.
                    while let Ok(Some(Ok(_))) = tokio::time::timeout(RECV_TIMEOUT, self.ws.next()).await {}
                    return frame;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("expected a close frame, got {other:?}"),
                Some(Err(err)) => panic!("connection failed before a close frame: {err}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// Drops the connection as a network failure would: no close frame,
    /// and a reset instead of an orderly end.
    pub fn kill(self) {
        if let MaybeTlsStream::Plain(tcp) = self.ws.get_ref() {
            let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(RECV_TIMEOUT, self.ws.next()).await {}
    }
}
