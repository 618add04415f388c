//! One chat scenario, three backends: chat-app (Rust, tokio-fastcgi), plain
//! PHP under real php-fpm, and Python on the standard library. Each must
//! give every client exactly the same JSON.

use std::path::Path;

use e2e::processes::{local, php_fpm_on_a_port, wait_for_port};
use e2e::{chat, free_port, Proc, Redis, Stack, StackOptions};

fn example(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(path).canonicalize().unwrap().display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_scenario_on_chat_app() {
    let stack = Stack::start(StackOptions::default());
    chat::scenario(&stack.ws_url("/")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_scenario_on_php_under_php_fpm() {
    let redis = Redis::start();
    let (_fpm, fpm_addr, _) = php_fpm_on_a_port("php-chat", 2);
    let params = [
        format!("SCRIPT_FILENAME={}", example("php/chat.php")),
        "ROUTER_HTTP={router_http}".to_owned(),
        "REDIS_HOST=127.0.0.1".to_owned(),
        format!("REDIS_PORT={}", redis.port),
    ];
    let gateway_args = params.iter().flat_map(|p| ["--param".to_owned(), p.clone()]).collect();
    let stack = Stack::start(StackOptions { backend: Some(fpm_addr), gateway_args, ..Default::default() });
    chat::scenario(&stack.ws_url("/")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_scenario_on_python() {
    // The gateway reaches its backend at the first event, so the Python
    // backend can start after the stack, once the router's port is known.
    let port = free_port();
    let stack = Stack::start(StackOptions { backend: Some(local(port).to_string()), ..Default::default() });
    let router = format!("http://{}", local(stack.router_http_port));
    let _python = Proc::spawn(
        "python3",
        &[example("python/chat.py"), "--listen".into(), local(port).to_string(), "--router".into(), router],
        "python",
    );
    wait_for_port(port, "python backend");
    chat::scenario(&stack.ws_url("/")).await;
}
