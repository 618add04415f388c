//! fooking's raw TCP clients (4-byte big-endian length, then the message)
//! get the same sessions, events and pushes as WebSocket clients.

use std::time::Duration;

use bytes::Bytes;
use e2e::{backend_events, echo_backend, free_port, http, scratch_file, Client, Stack, StackOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// A client framed by tokio-util's own codec, not the gateway's.
struct TcpClient(Framed<TcpStream, LengthDelimitedCodec>);

impl TcpClient {
    async fn connect(port: u16) -> TcpClient {
        TcpClient(Framed::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap(), LengthDelimitedCodec::new()))
    }

    async fn send(&mut self, body: &[u8]) {
        self.0.send(Bytes::copy_from_slice(body)).await.unwrap();
    }

    async fn recv(&mut self) -> Option<Bytes> {
        let next = tokio::time::timeout(Duration::from_secs(5), self.0.next()).await.expect("nothing within 5 s");
        next.map(|frame| frame.unwrap().freeze())
    }

    async fn recv_json(&mut self) -> Value {
        serde_json::from_slice(&self.recv().await.expect("connection closed")).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_clients_get_events_params_and_replies() {
    let log = scratch_file("echo-events.jsonl");
    let (_echo, echo_addr) = echo_backend(&log);
    let tcp_port = free_port();
    let gateway_args =
        vec!["--listen-tcp".into(), format!("127.0.0.1:{tcp_port}"), "--max-message".into(), "1000".into()];
    let _stack = Stack::start(StackOptions { backend: Some(echo_addr), gateway_args, ..Default::default() });

    let mut client = TcpClient::connect(tcp_port).await;
    let connect = client.recv_json().await;
    assert_eq!((&connect["EVENT"], &connect["REMOTE_ADDR"]), (&json!("1"), &json!("127.0.0.1")));
    client.send(b"\x00\x01binary hello").await;
    assert_eq!(client.recv().await.as_deref(), Some(&b"\x00\x01binary hello"[..]));
    client.send(&[b'x'; 1001]).await;
    assert_eq!(client.recv().await, None, "an oversized message closes the connection");

    let seen = backend_events(&log, 3);
    let kinds: Vec<&str> = seen.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["connect", "message", "close"]);
    assert_eq!(seen[1]["params"]["CONTENT_TYPE"], "application/octet-stream");
    assert_eq!(seen[1]["params"]["CONTENT_LENGTH"], "14");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_websocket_clients_chat_and_get_pushes() {
    let tcp_port = free_port();
    let gateway_args = vec!["--listen-tcp".into(), format!("127.0.0.1:{tcp_port}")];
    let stack = Stack::start(StackOptions { gateway_args, ..Default::default() });

    let mut web = Client::connect(&stack.ws_url("/")).await;
    let web_id = e2e::chat::login(&mut web, "web", &[]).await;

    let mut tcp = TcpClient::connect(tcp_port).await;
    tcp.send(br#"{"type":"login","name":"tcp"}"#).await;
    let mut got = [tcp.recv_json().await, tcp.recv_json().await];
    got.sort_by_key(|v| v.to_string());
    let tcp_id = got.iter().find(|m| m["type"] == "login").unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(web.recv_json().await, json!({"type": "login", "name": "tcp", "id": tcp_id}));

    let (status, reply) =
        http::post(stack.router_http_port, "/v1/send", json!({"sessions": [tcp_id], "data": "pushed"}));
    assert_eq!((status, &reply["sessions"]), (200, &json!(1)));
    assert_eq!(tcp.recv().await.as_deref(), Some(&b"pushed"[..]));

    drop(tcp);
    assert_eq!(web.recv_json().await, json!({"type": "close", "name": "tcp", "id": tcp_id}));
    let _ = web_id;
}
