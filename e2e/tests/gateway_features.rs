//! Gateway behaviour backends rely on: drain on SIGTERM, heartbeats and
//! idle timeouts, session meta, routing by key, per-session order.

use std::time::Duration;

use e2e::{backend_events, echo_backend_with, echo_stack, scratch_file, Client, Stack, StackOptions};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_every_client_and_delivers_every_close_event() {
    let (mut stack, _echo, log) = echo_stack(&[], &[]);
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(Client::connect(&stack.ws_url("/")).await);
    }
    backend_events(&log, 100);
    let gateway = stack.procs.iter_mut().find(|p| p.name == "gateway").unwrap();
    gateway.signal("TERM");
    for client in &mut clients {
        let frame = client.expect_close().await.expect("a close frame");
        assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1001, "server shutting down"));
    }
    assert!(gateway.wait_exit(Duration::from_secs(10)), "the gateway exits after draining");
    let events = backend_events(&log, 200);
    let closes = events.iter().filter(|e| e["event"] == "close").count();
    assert_eq!(closes, 100, "one close event per client, delivered before exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_closed_and_live_ones_answer_pings() {
    let (stack, _echo, _log) = echo_stack(&["--ping-interval-ms", "100", "--idle-timeout-ms", "600"], &[]);
    let mut live = Client::connect(&stack.ws_url("/")).await;
    let mut silent = Client::connect(&stack.ws_url("/")).await;
    // Reading lets the live client's library answer each ping.
    live.expect_silence(Duration::from_millis(1500)).await;
    live.send(Message::text("still here")).await;
    assert_eq!(live.recv().await, Message::text("still here"));
    let frame = silent.expect_close().await.expect("a close frame");
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1001, "idle timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_meta_headers_come_back_as_params() {
    let (stack, _echo, log) = echo_stack(&[], &[]);
    let mut client = Client::connect(&stack.ws_url("/")).await;
    client.send(Message::text("remember alice")).await;
    client.recv().await;
    client.send(Message::text("who am I?")).await;
    client.recv().await;
    client.close().await;
    let events = backend_events(&log, 4);
    assert!(events[1]["params"].get("META_USER").is_none(), "not before the backend set it");
    assert_eq!(events[2]["params"]["META_USER"], json!("alice"));
    assert_eq!(events[3]["event"], "close");
    assert_eq!(events[3]["params"]["META_USER"], json!("alice"), "the close event carries it too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_routed_to_pools_by_key() {
    let (default_log, chat_log) = (scratch_file("default.jsonl"), scratch_file("chat.jsonl"));
    let (_default, default_addr) = echo_backend_with(&default_log, &[], "echo-default");
    let (_chat, chat_addr) = echo_backend_with(&chat_log, &[], "echo-chat");
    let stack = Stack::start(StackOptions {
        backend: Some(default_addr),
        gateway_args: vec![
            "--backend".into(),
            format!("chat={chat_addr}"),
            "--route".into(),
            "type:chat.*=chat".into(),
        ],
        ..Default::default()
    });
    let mut client = Client::connect(&stack.ws_url("/")).await;
    for body in [r#"{"type":"chat.say","text":"hi"}"#, r#"{"type":"move"}"#, r#"{"type":"chat.whisper"}"#] {
        client.send(Message::text(body)).await;
        assert_eq!(client.recv().await, Message::text(body));
    }
    let bodies = |log| -> Vec<String> {
        backend_events(log, 1)
            .iter()
            .filter(|e| e["event"] == "message")
            .map(|e| e["body"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(bodies(&chat_log), [r#"{"type":"chat.say","text":"hi"}"#, r#"{"type":"chat.whisper"}"#]);
    assert_eq!(bodies(&default_log), [r#"{"type":"move"}"#], "unmatched messages go to default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_events_reach_the_backend_in_order_under_random_delays() {
    // Room for all 1,000 in the session's queue: this is about order, not the in-flight limit.
    let (stack, _echo, log) = echo_stack(&["--max-pending-events", "1024"], &["--random-delay-ms", "3"]);
    let mut client = Client::connect(&stack.ws_url("/")).await;
    for i in 0..1000 {
        client.send(Message::text(format!("m{i}"))).await;
    }
    for i in 0..1000 {
        assert_eq!(client.recv().await, Message::text(format!("m{i}")), "replies in order");
    }
    client.close().await;
    let events = backend_events(&log, 1002);
    assert_eq!(events[0]["event"], "connect");
    for (i, event) in events[1..1001].iter().enumerate() {
        assert_eq!(event["body"], json!(format!("m{i}")));
    }
    assert_eq!(events[1001]["event"], "close");
    assert_eq!(events.len(), 1002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toml_config_file_sets_flags_and_the_command_line_wins() {
    let log = scratch_file("echo.jsonl");
    let (_echo, echo_addr) = echo_backend_with(&log, &[], "echo");
    let port = e2e::free_port();
    let config = scratch_file("gateway.toml");
    let toml = format!(
        "listen = \"127.0.0.1:{port}\"\nbackend = [\"{echo_addr}\"]\nmax_connections = 1\nconnect_event = false\n"
    );
    std::fs::write(&config, toml).unwrap();
    let _gateway =
        e2e::Proc::project("gateway", &["--config", config.to_str().unwrap(), "--max-connections", "2"], "gateway");
    e2e::processes::wait_for_port(port, "gateway");
    let url = format!("ws://127.0.0.1:{port}/");
    let mut first = Client::connect(&url).await;
    let _second = Client::connect(&url).await;
    let mut third = Client::connect(&url).await;
    let frame = third.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1013, "the command line's limit of 2, not the file's 1");
    first.send(Message::text("configured")).await;
    assert_eq!(first.recv().await, Message::text("configured"), "listen and backend came from the file");
    assert!(
        !std::fs::read_to_string(&log).unwrap().contains(r#""event":"connect""#),
        "connect_event = false from the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_request_aborts_it_then_closes() {
    let (stack, _echo, log) = echo_stack(&[], &["--slow-ms", "700"]);
    let mut client = Client::connect(&stack.ws_url("/")).await;
    client.send(Message::text("sleep on it")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(client);
    let events = backend_events(&log, 4);
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["connect", "message", "abort", "close"],
        "FCGI_ABORT_REQUEST for the request out, then the close event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_event_closes_the_client_with_4000_plus_status() {
    let (stack, _echo, log) = echo_stack(&[], &["--refuse-connect"]);
    let mut client = Client::connect(&stack.ws_url("/")).await;
    let frame = client.expect_close().await.expect("a close frame");
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4403, "no entry"), "the body is the reason");
    // A close event would come before the connect of a client that came after.
    let mut after = Client::connect(&stack.ws_url("/")).await;
    after.expect_close().await.expect("a close frame");
    let events = backend_events(&log, 2);
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["connect", "connect"], "no close event for a session the backend refused: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_under_a_route_prefix_goes_to_the_backend_as_cgi() {
    let (stack, _echo, log) = echo_stack(&["--http-route", "/api/"], &[]);
    let port = stack.gateway_port;
    let (status, body) = e2e::http::request(port, "POST", "/api/echo?x=1", "ping over http").unwrap();
    assert_eq!((status, body.as_str()), (200, "ping over http"));
    let events = backend_events(&log, 1);
    let params = &events[0]["params"];
    assert_eq!(params["REQUEST_METHOD"], "POST");
    assert_eq!(params["REQUEST_URI"], "/api/echo?x=1");
    assert_eq!(params["QUERY_STRING"], "x=1");
    assert_eq!(params["CONTENT_TYPE"], "application/json");
    assert!(params.get("SESSIONID").is_none() && params.get("EVENT").is_none(), "not a session's event: {params}");
    let (status, _) = e2e::http::request(port, "GET", "/elsewhere", "").unwrap();
    assert_eq!(status, 404, "only the route's prefix is forwarded");
    let (status, page) = e2e::http::request(port, "GET", "/", "").unwrap();
    assert!(status == 200 && page.contains("<title>Chat</title>"), "the page is still served");
}

/// With `--client-subscribe`, a client asks to join a channel and its
/// backend decides (EVENT=5, CHANNEL): a 2xx joins it here and at the
/// router, so publishes reach it; a refusal is told to the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_subscribes_to_a_channel_when_its_backend_says_yes() {
    let (stack, _echo, log) = echo_stack(&["--client-subscribe", "true"], &["--greet"]);
    let router = stack.router_http_port;
    let mut client = Client::connect(&stack.ws_url("/")).await;
    let id = client.recv().await.into_text().unwrap().to_string();
    client.send(Message::text(r#"{"fk":"subscribe","channel":"room"}"#)).await;
    assert_eq!(client.recv_json().await, json!({"type": "subscribed", "source": "gateway", "channel": "room"}));
    // The router hears of it on the gateway's link, right after.
    let listed = || e2e::http::post(router, "/v1/members", json!({"channel": "room"})).1["sessions"] == json!([id]);
    assert!(e2e::eventually(Duration::from_secs(5), listed).await, "the router knows the member");
    e2e::http::post(router, "/v1/publish", json!({"channel": "room", "data": "to the room"}));
    assert_eq!(client.recv().await, Message::text("to the room"));

    client.send(Message::text(r#"{"fk":"subscribe","channel":"private-x"}"#)).await;
    let refused = client.recv_json().await;
    assert_eq!((&refused["type"], &refused["code"]), (&json!("subscribe_refused"), &json!(403)));
    let events = backend_events(&log, 3);
    let subscribe = &events[1]["params"];
    assert_eq!((&subscribe["EVENT"], &subscribe["CHANNEL"]), (&json!("5"), &json!("room")), "{subscribe}");
    assert!(subscribe.get("CONTENT_LENGTH").is_none(), "the channel is a param, not a body");
    let (_, channels) = e2e::http::post(router, "/v1/channels", json!({"session": id}));
    assert_eq!(channels["channels"], json!(["room"]));

    // Without the flag the same text is the backend's message, and joins nothing.
    let (plain, _echo, _log) = echo_stack(&[], &[]);
    let mut client = Client::connect(&plain.ws_url("/")).await;
    client.send(Message::text(r#"{"fk":"subscribe","channel":"room"}"#)).await;
    assert_eq!(client.recv().await, Message::text(r#"{"fk":"subscribe","channel":"room"}"#), "echoed");
    let (_, members) = e2e::http::post(plain.router_http_port, "/v1/count", json!({"channel": "room"}));
    assert_eq!(members["count"], 0);
}

/// A `--page` answers GET and HEAD (`curl -I`), the latter with the
/// length and no body; other methods are 404 as any path.
#[test]
fn pages_answer_get_and_head() {
    let stack = Stack::start(StackOptions::default());
    let (status, headers, body) = e2e::http::exchange(stack.gateway_port, "GET", "/fk.js", &[], "");
    assert_eq!(status, 200);
    assert!(body.contains("FkClient"));
    let (status, head, empty) = e2e::http::exchange(stack.gateway_port, "HEAD", "/fk.js", &[], "");
    assert_eq!((status, empty.as_str()), (200, ""), "HEAD: the head alone");
    let length = |headers: &[(String, String)]| {
        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.clone())
    };
    assert_eq!(length(&head), length(&headers), "HEAD says GET's length");
    assert_eq!(e2e::http::exchange(stack.gateway_port, "POST", "/fk.js", &[], "x").0, 404);
}
