//! The chat demo end to end: real router, gateway and chat-app processes.

use e2e::{chat, Redis, Stack, StackOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_separate_processes_on_redis() {
    let redis = Redis::start();
    let stack = Stack::start(StackOptions { redis: Some(redis.url()), ..Default::default() });
    chat::scenario(&stack.ws_url("/chat")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_the_single_demo_binary_in_memory() {
    let stack = Stack::demo();
    chat::scenario(&stack.ws_url("/")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_channel_and_renaming_by_logging_in_again() {
    let stack = Stack::start(StackOptions::default());
    let mut ann = e2e::Client::connect(&stack.ws_url("/")).await;
    let id = chat::login(&mut ann, "ann", &[]).await;
    ann.send_json(json!({"type": "join", "channel": 3})).await;
    ann.send_json(json!({"type": "msg", "channel": 3, "text": "in three"})).await;
    assert_eq!(chat::without_time(ann.recv_json().await)["text"], "in three");
    ann.send_json(json!({"type": "leave", "channel": 3})).await;
    ann.send_json(json!({"type": "msg", "channel": 3, "text": "after leaving"})).await;
    ann.send_json(json!({"type": "login", "name": "anne"})).await;
    let mut got = ann.recv_json_unordered(2).await;
    got.sort_by_key(|m| m["type"].as_str().unwrap().to_owned());
    assert_eq!(
        got[0],
        json!({"type": "list", "list": [{"name": "anne", "id": id}]}),
        "a second login renames, and the channel-3 message never came"
    );
    assert_eq!(got[1], json!({"type": "login", "name": "anne", "id": id}));
}
