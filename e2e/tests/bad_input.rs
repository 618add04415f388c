//! Bad input gets a clear error and breaks nothing else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::{chat, fooking, free_port, http, Client, Stack, StackOptions};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chat_messages_get_an_error_and_the_connection_stays_usable() {
    let stack = Stack::start(StackOptions::default());
    let mut client = Client::connect(&stack.ws_url("/")).await;

    client.send(Message::text("{not json")).await;
    let reply = client.recv_json().await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_u64()), (Some("error"), Some(400)), "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("invalid JSON"), "{reply}");

    client.send_json(json!({"type": "dance"})).await;
    let reply = client.recv_json().await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_u64()), (Some("error"), Some(404)), "{reply}");

    client.send_json(json!({"type": "msg", "text": "hi"})).await;
    assert_eq!(client.recv_json().await["code"], 401, "msg before login");

    client.send_json(json!({"type": "login", "name": "x".repeat(33)})).await;
    assert_eq!(client.recv_json().await["code"], 400, "name over 32 characters");

    chat::login(&mut client, "still-here", &[]).await;
    client.send_json(json!({"type": "msg", "text": "y".repeat(4097)})).await;
    assert_eq!(client.recv_json().await["code"], 413, "text over 4 KB");
    client.send_json(json!({"type": "msg", "text": "y".repeat(4096)})).await;
    assert_eq!(
        chat::without_time(client.recv_json().await)["text"].as_str().map(str::len),
        Some(4096),
        "4 KB exactly is fine"
    );
}

/// Waits for `needle` in a process log: the reason must be logged.
fn wait_for_log(stack: &Stack, proc: &str, needle: &str) {
    let proc = stack.procs.iter().find(|p| p.name == proc).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proc.log_text().contains(needle) {
        assert!(Instant::now() < deadline, "{} never logged {needle:?}:\n{}", proc.name, proc.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf), Ok(0) | Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_router_frames_close_only_their_own_connection() {
    let stack = Stack::start(StackOptions::default());
    let mut client = Client::connect(&stack.ws_url("/")).await;
    let id = chat::login(&mut client, "watcher", &[]).await;

    // A frame announcing 2^31-1 bytes of data: refused before buffering.
    let mut oversized = TcpStream::connect(("127.0.0.1", stack.router_port)).unwrap();
    oversized.write_all(&[0, 6, 0, 0, 0x7f, 0xff, 0xff, 0xff]).unwrap();
    assert!(closed_by_peer(&mut oversized));
    wait_for_log(&stack, "router", "exceeds the limit");

    // A frame cut short by the peer's close.
    let mut truncated = TcpStream::connect(("127.0.0.1", stack.router_port)).unwrap();
    truncated.write_all(&[0, 6, 0, 0, 0, 0, 0, 10, b'a', b'b']).unwrap();
    truncated.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_by_peer(&mut truncated));
    wait_for_log(&stack, "router", "closed in the middle of a frame");

    // An unknown frame type and a ragged session area.
    fooking::call(stack.router_port, &fooking::frame(99, b"", b"", false));
    wait_for_log(&stack, "router", "unknown frame type 99");
    fooking::call(stack.router_port, &fooking::frame(fooking::SEND_MSG, b"abc", b"x", false));
    wait_for_log(&stack, "router", "a session id is 16 lowercase hex characters");

    // The router and the gateway link carry on.
    fooking::call(stack.router_port, &fooking::frame(fooking::SEND_MSG, id.as_bytes(), b"still routed", false));
    assert_eq!(client.recv().await, Message::text("still routed"));
    assert_eq!(e2e::metric(stack.router_http_port, "router_bad_frames_total"), 4.0, "each bad frame is counted");
    assert_eq!(e2e::metric(stack.router_http_port, r#"router_commands_total{command="send"}"#), 1.0);
    assert_eq!(e2e::metric(stack.router_http_port, "router_gateways"), 1.0, "the gateway link carried on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_errors_are_json_with_a_code() {
    let stack = Stack::start(StackOptions::default());
    let port = stack.router_http_port;
    let (status, body) = http::post(port, "/v1/frobnicate", json!({}));
    assert_eq!((status, &body["error"]["code"]), (404, &json!("unknown_command")), "{body}");

    let (status, body) = http::post(port, "/v1/send", json!({"sessions": ["NOT-AN-ID"], "data": "x"}));
    assert_eq!((status, &body["error"]["code"]), (400, &json!("bad_request")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("16 lowercase hex"), "{body}");

    let (status, body) = http::post(port, "/v1/join", json!({"channel": "c".repeat(257), "sessions": []}));
    assert_eq!((status, &body["error"]["code"]), (400, &json!("bad_request")), "{body}");

    let (status, text) = http::request(port, "POST", "/v1/publish", "{\"channel\":").unwrap();
    assert_eq!(status, 400, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_closes_the_client_with_a_reason() {
    let nothing_listens = format!("127.0.0.1:{}", free_port());
    let stack = Stack::start(StackOptions { backend: Some(nothing_listens), ..Default::default() });
    let mut client = Client::connect(&stack.ws_url("/")).await;
    let close = client.expect_close().await.expect("a close frame with a code");
    assert_eq!((u16::from(close.code), close.reason.as_str()), (1011, "backend unavailable"));
}
