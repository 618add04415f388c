//! The gateway's FastCGI upstreams with real backend processes: weights,
//! failover, timeouts.

use e2e::{backend_events, echo_backend_with, scratch_file, Client, Stack, StackOptions};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn connects(log: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains(r#""event":"connect""#)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_backends_share_load_in_proportion() {
    let (log_a, log_b) = (scratch_file("a.jsonl"), scratch_file("b.jsonl"));
    let (_a, addr_a) = echo_backend_with(&log_a, &[], "echo-a");
    let (_b, addr_b) = echo_backend_with(&log_b, &[], "echo-b");
    let stack = Stack::start(StackOptions {
        backend: Some(addr_a),
        gateway_args: vec!["--backend".into(), format!("{addr_b},weight=3")],
        ..Default::default()
    });
    let mut clients = Vec::new();
    for _ in 0..40 {
        let mut client = Client::connect(&stack.ws_url("/")).await;
        client.send(Message::text("ping")).await;
        assert_eq!(client.recv().await, Message::text("ping"));
        clients.push(client);
    }
    // 40 connect events and 40 messages: 80 turns, shared 1:3.
    let (a, b) = (backend_events(&log_a, 1).len(), backend_events(&log_b, 1).len());
    assert_eq!((a, b), (20, 60), "weight 1 vs weight 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_fails_over_to_the_others() {
    let (log_a, log_b) = (scratch_file("a.jsonl"), scratch_file("b.jsonl"));
    let (mut a, addr_a) = echo_backend_with(&log_a, &[], "echo-a");
    let (_b, addr_b) = echo_backend_with(&log_b, &[], "echo-b");
    let stack = Stack::start(StackOptions {
        backend: Some(addr_a),
        gateway_args: vec!["--backend".into(), addr_b],
        ..Default::default()
    });
    a.kill();
    for i in 0..10 {
        let mut client = Client::connect(&stack.ws_url("/")).await;
        client.send(Message::text(format!("after the kill {i}"))).await;
        assert_eq!(
            client.recv().await,
            Message::text(format!("after the kill {i}")),
            "no client notices the dead backend"
        );
    }
    assert_eq!(connects(&log_b), 10, "every connect event reached the live backend");
    let gateway = stack.procs.iter().find(|p| p.name == "gateway").unwrap();
    assert!(gateway.log_text().contains("backend ejected"), "three failures in a row eject it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_times_out_and_the_client_stays_connected() {
    let log = scratch_file("slow.jsonl");
    let (_echo, addr) = echo_backend_with(&log, &["--slow-ms", "3000"], "echo-slow");
    let stack = Stack::start(StackOptions {
        backend: Some(addr),
        gateway_args: vec!["--backend-timeout-ms".into(), "300".into()],
        ..Default::default()
    });
    let mut client = Client::connect(&stack.ws_url("/")).await;
    client.send(Message::text("sleep please")).await;
    let error = client.recv_json().await;
    assert_eq!(
        error,
        json!({"type": "error", "source": "gateway", "code": 504, "message": "backend did not answer in time"})
    );
    client.send(Message::text("still here?")).await;
    assert_eq!(client.recv().await, Message::text("still here?"), "the connection stayed open and usable");
}

/// A client that leaves while the backend is down: its close event waits
/// for the backend to come back (within `--event-retry-ms`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_event_waits_out_a_backend_restart() {
    let log = scratch_file("restart.jsonl");
    let (mut echo, addr) = echo_backend_with(&log, &["--greet"], "echo");
    let stack = Stack::start(StackOptions { backend: Some(addr.clone()), ..Default::default() });
    let mut client = Client::connect(&stack.ws_url("/")).await;
    let session = client.recv().await.into_text().unwrap().to_string();
    echo.kill();
    client.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let log_path = log.to_str().unwrap();
    let _again = e2e::Proc::project("echo-app", &["--listen", &addr, "--greet", "--log", log_path], "echo-again");
    let events = backend_events(&log, 2);
    assert_eq!(events[1]["event"], "close", "{events:?}");
    assert_eq!(events[1]["params"]["SESSIONID"], session.as_str());
}

/// Past `--event-retry-ms`, a close event the backend never took is given
/// up: counted, and logged with its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_event_is_given_up_after_the_retry_time() {
    let log = scratch_file("down.jsonl");
    let (mut echo, addr) = echo_backend_with(&log, &["--greet"], "echo");
    let admin = e2e::free_port();
    let stack = Stack::start(StackOptions {
        backend: Some(addr),
        gateway_args: vec!["--event-retry-ms".into(), "600".into(), "--admin".into(), format!("127.0.0.1:{admin}")],
        ..Default::default()
    });
    let mut client = Client::connect(&stack.ws_url("/")).await;
    let session = client.recv().await.into_text().unwrap().to_string();
    echo.kill();
    client.close().await;
    let given_up = r#"gateway_events_given_up_total{event="close"}"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while e2e::metric(admin, given_up) < 1.0 {
        assert!(std::time::Instant::now() < deadline, "the close event was never given up");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(e2e::metric(admin, "gateway_event_retries_total") >= 2.0, "tried again before giving up");
    let gateway = stack.procs.iter().find(|p| p.name == "gateway").unwrap();
    let line = gateway.log_text().lines().find(|l| l.contains("event given up")).map(str::to_owned);
    assert!(line.as_deref().is_some_and(|l| l.contains(&session)), "the log names the session: {line:?}");
}
