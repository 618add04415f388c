//! The chat demo end to end: real router, gateway and chat-app processes.

use e2e::{chat, Redis, Stack, StackOptions};

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
