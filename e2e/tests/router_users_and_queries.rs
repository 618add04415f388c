//! The router's commands beyond fooking's: users, member lists and counts,
//! a session's channels, who is online, publish-except and batches, on
//! Redis, as real clients see them.

use e2e::processes::local;
use e2e::{chat, http, Client, Redis, Stack, StackOptions};
use protocol::cmd::Payload;
use protocol::RouterClient;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn call(stack: &Stack, command: &str, body: Value) -> Value {
    let (status, reply) = http::post(stack.router_http_port, &format!("/v1/{command}"), body);
    assert_eq!(status, 200, "{command}: {reply}");
    reply
}

async fn text(client: &mut Client) -> String {
    match client.recv().await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_member_queries_online_publish_except_and_batches() {
    let redis = Redis::start();
    let stack = Stack::start(StackOptions { redis: Some(redis.url()), ..Default::default() });
    let url = stack.ws_url("/");
    let (mut a, a_id, mut b, b_id) = chat::two_logged_in(&url).await;
    let mut c = Client::connect(&url).await;
    let c_id = chat::login(&mut c, "c", &[("a", &a_id), ("b", &b_id)]).await;
    a.recv_json().await;
    b.recv_json().await;
    let sync = |stack: &Stack| call(stack, "broadcast", json!({"data": "sync"}));

    call(&stack, "bind", json!({"session": a_id, "user": "ann"}));
    call(&stack, "bind", json!({"session": b_id, "user": "ann"}));
    call(&stack, "bind", json!({"session": c_id, "user": "cy"}));
    let sent = call(&stack, "send_user", json!({"user": "ann", "data": "hi ann"}));
    assert_eq!(sent, json!({"sessions": 2, "delivered_to_gateways": 1}));
    assert_eq!(text(&mut a).await, "hi ann");
    assert_eq!(text(&mut b).await, "hi ann");
    sync(&stack);
    assert_eq!(text(&mut c).await, "sync", "not ann's session");
    assert_eq!((text(&mut a).await, text(&mut b).await), ("sync".into(), "sync".into()));

    call(&stack, "join", json!({"channel": "room", "sessions": [a_id, b_id, c_id]}));
    let mut all = vec![a_id.clone(), b_id.clone(), c_id.clone()];
    all.sort();
    assert_eq!(call(&stack, "members", json!({"channel": "room"})), json!({"sessions": all, "count": 3}));
    assert_eq!(call(&stack, "count", json!({"channel": "room"})), json!({"count": 3}));
    assert_eq!(call(&stack, "channels", json!({"session": a_id})), json!({"channels": ["room"]}));

    let except = call(&stack, "publish_except", json!({"channel": "room", "except": [a_id], "data": "not for a"}));
    assert_eq!(except["sessions"], 2);
    assert_eq!(text(&mut b).await, "not for a");
    assert_eq!(text(&mut c).await, "not for a");
    sync(&stack);
    assert_eq!(text(&mut a).await, "sync", "a was left out");
    text(&mut b).await;
    text(&mut c).await;

    let online = call(&stack, "online", json!({"sessions": [a_id, "ffffffffffffffff"], "users": ["ann", "nobody"]}));
    assert_eq!(online, json!({"sessions": [a_id], "users": ["ann"]}));

    let batch = json!([
        {"command": "join", "channel": "second", "sessions": [a_id]},
        {"command": "count", "channel": "second"},
        {"command": "send", "sessions": [a_id], "data": "batched"}
    ]);
    let results = call(&stack, "batch", batch);
    assert_eq!(
        results,
        json!({"results": [{"sessions": 1}, {"count": 1}, {"sessions": 1, "delivered_to_gateways": 1}]})
    );
    assert_eq!(text(&mut a).await, "batched");
    let (status, bad) = http::post(
        stack.router_http_port,
        "/v1/batch",
        json!([{"command": "count", "channel": "x"}, {"command": "frobnicate"}]),
    );
    assert_eq!(status, 400, "{bad}");
    assert!(bad["error"]["message"].as_str().unwrap().contains("batch item 1"), "{bad}");

    // The same over the binary protocol.
    let router = RouterClient::new(local(stack.router_port).to_string());
    let mut members = router.members("room").await.unwrap();
    members.sort();
    assert_eq!(members.iter().map(|id| id.to_string()).collect::<Vec<_>>(), all);
    router.bind(c_id.parse().unwrap(), "ann").await.unwrap();
    router.send_user("ann", Payload::text("binary hi")).await.unwrap();
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(text(client).await, "binary hi");
    }

    // A session's user binding and memberships end with it.
    b.close().await;
    assert_eq!(a.recv_json().await["type"], "close");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while call(&stack, "count", json!({"channel": "room"}))["count"] != 2 {
        assert!(tokio::time::Instant::now() < deadline, "b never left the room");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(call(&stack, "send_user", json!({"user": "ann", "data": "after b left"}))["sessions"], 2);
}
