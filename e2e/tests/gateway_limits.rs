//! Each gateway limit, crossed by one client, with the close code or
//! refusal it gets, the metric that counts it, and another client that
//! carries on unaffected.

use std::time::Duration;

use e2e::{echo_stack, free_port, metric, Client};
use protocol::cmd::Payload;
use protocol::RouterClient;
use tokio_tungstenite::tungstenite::Message;

/// A stack whose gateway also has an admin listener; returns its port.
fn stack_with(gateway_args: &[&str], echo_flags: &[&str]) -> (e2e::Stack, e2e::Proc, u16) {
    let admin = free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let mut args = vec!["--admin", &admin_addr];
    args.extend(gateway_args);
    let (stack, echo, _) = echo_stack(&args, echo_flags);
    (stack, echo, admin)
}

async fn still_echoes(client: &mut Client) {
    client.send(Message::text("still fine?")).await;
    assert_eq!(client.recv().await, Message::text("still fine?"));
}

async fn close_code(client: &mut Client) -> (u16, String) {
    let frame = client.expect_close().await.expect("a close frame with a code");
    (frame.code.into(), frame.reason.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_new_clients_get_1013() {
    let (stack, _echo, admin) = stack_with(&["--max-connections", "3"], &[]);
    let mut first = Client::connect(&stack.ws_url("/")).await;
    let second = Client::connect(&stack.ws_url("/")).await;
    let _third = Client::connect(&stack.ws_url("/")).await;
    let mut refused = Client::connect(&stack.ws_url("/")).await;
    assert_eq!(close_code(&mut refused).await, (1013, "server full, try again later".into()));
    assert_eq!(metric(admin, r#"gateway_connections_refused_total{reason="max_connections"}"#), 1.0);
    still_echoes(&mut first).await;

    second.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metric(admin, "gateway_sessions") != 2.0 {
        assert!(tokio::time::Instant::now() < deadline, "the closed session never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut newcomer = Client::connect(&stack.ws_url("/")).await;
    still_echoes(&mut newcomer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_with_1009() {
    let (stack, _echo, admin) = stack_with(&["--max-message", "100"], &[]);
    let mut bystander = Client::connect(&stack.ws_url("/")).await;
    let mut client = Client::connect(&stack.ws_url("/")).await;
    client.send(Message::text("x".repeat(101))).await;
    assert_eq!(close_code(&mut client).await, (1009, "message too big".into()));
    assert_eq!(metric(admin, r#"gateway_client_closes_total{reason="too_big"}"#), 1.0);
    still_echoes(&mut bystander).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_the_message_rate_is_closed_with_1008() {
    let (stack, _echo, admin) = stack_with(&["--max-message-rate", "5", "--max-message-burst", "5"], &[]);
    let mut bystander = Client::connect(&stack.ws_url("/")).await;
    let mut client = Client::connect(&stack.ws_url("/")).await;
    for i in 0..20 {
        client.send(Message::text(format!("flood {i}"))).await;
    }
    let mut echoed = 0;
    loop {
        match client.recv_any().await {
            Message::Text(_) => echoed += 1,
            Message::Close(Some(frame)) => {
                assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1008, "message rate exceeded"));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(echoed <= 5, "only the burst got through, {echoed} echoed");
    assert_eq!(metric(admin, r#"gateway_client_closes_total{reason="rate_limited"}"#), 1.0);
    still_echoes(&mut bystander).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_connections_from_one_address_get_429() {
    let (stack, _echo, admin) =
        stack_with(&["--max-connect-rate-per-ip", "0.1", "--max-connect-burst-per-ip", "2"], &[]);
    let url = stack.ws_url("/");
    // Not 127.0.0.1, whose connects the harness spent waiting for the port:
    // every connection counts from its accept.
    let from = "127.0.0.3".parse().ok();
    let connect = || async { Client::try_connect(&url, &[], from).await };
    let _allowed = [connect().await.unwrap(), connect().await.unwrap()];
    let refused = connect().await.err().expect("the third is refused");
    assert_eq!(refused, "HTTP 429");
    assert_eq!(metric(admin, r#"gateway_connections_refused_total{reason="ip_rate"}"#), 1.0);
    let elsewhere = "127.0.0.2".parse().ok();
    let mut other = Client::try_connect(&url, &[], elsewhere).await.expect("another address is unaffected");
    still_echoes(&mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_connect() {
    let (stack, _echo, admin) = stack_with(&["--allowed-origin", "https://good.example"], &[]);
    let url = stack.ws_url("/");
    let refused = Client::try_connect(&url, &[("Origin", "https://evil.example")], None).await.err();
    assert_eq!(refused.as_deref(), Some("HTTP 403"));
    let mut good = Client::try_connect(&url, &[("Origin", "https://good.example")], None).await.unwrap();
    still_echoes(&mut good).await;
    let mut no_browser = Client::connect(&url).await;
    still_echoes(&mut no_browser).await;
    assert_eq!(metric(admin, r#"gateway_connections_refused_total{reason="origin"}"#), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_limit_messages_are_refused_with_an_error() {
    let (stack, _echo, admin) = stack_with(&["--max-pending-events", "2"], &["--slow-ms", "400"]);
    let mut client = Client::connect(&stack.ws_url("/")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..5 {
        client.send(Message::text(format!("sleep {i}"))).await;
    }
    let mut refusals = 0;
    let mut echoes = Vec::new();
    while echoes.len() + refusals < 5 {
        match client.recv().await {
            Message::Text(text) if text.starts_with("sleep") => echoes.push(text.to_string()),
            Message::Text(text) => {
                let error: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!((error["code"].as_u64(), error["source"].as_str()), (Some(429), Some("gateway")), "{error}");
                refusals += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoes, ["sleep 0", "sleep 1", "sleep 2"], "one in flight and two queued are served, in order");
    assert_eq!(refusals, 2);
    assert_eq!(metric(admin, "gateway_messages_refused_total"), 2.0);
    still_echoes(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_is_dropped_and_others_keep_getting_pushes() {
    let (stack, _echo, admin) =
        stack_with(&["--outbound-queue-bytes", "65536", "--write-timeout-ms", "500"], &["--greet"]);
    let url = stack.ws_url("/");
    let mut slow = Client::connect(&url).await;
    let slow_id = String::from_utf8(slow.recv().await.into_data().to_vec()).unwrap();
    let mut fast = Client::connect(&url).await;
    let fast_id = String::from_utf8(fast.recv().await.into_data().to_vec()).unwrap();
    fast.send(Message::text("before")).await;
    assert_eq!(fast.recv().await, Message::text("before"));

    let router = RouterClient::new(format!("127.0.0.1:{}", stack.router_port));
    let chunk = "x".repeat(64 * 1024);
    for _ in 0..200 {
        router.send(vec![slow_id.parse().unwrap()], Payload::text(chunk.clone())).await.unwrap();
    }
    router.send(vec![fast_id.parse().unwrap()], Payload::text("for the fast one")).await.unwrap();
    assert_eq!(fast.recv().await, Message::text("for the fast one"), "a stuck client holds up nobody else");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metric(admin, r#"gateway_client_closes_total{reason="slow_consumer"}"#) < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the slow client was never dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while metric(admin, "gateway_sessions") != 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the slow client's session never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    still_echoes(&mut fast).await;
}
