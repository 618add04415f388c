//! The router clients (clients/php/Router.php, clients/python/fk_router.py)
//! against a real router, with real clients on a real gateway: each
//! client's own test script checks every call's result and error, and this
//! checks what the WebSocket clients received, in order.

use std::path::Path;
use std::process::Command;

use e2e::processes::{echo_backend_with, scratch_file};
use e2e::{Client, Stack, StackOptions};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn greeted(stack: &Stack) -> (Client, String) {
    let mut client = Client::connect(&stack.ws_url("/")).await;
    let Message::Text(id) = client.recv().await else { panic!("expected the greeting") };
    (client, id.to_string())
}

/// Runs `interpreter script` (a path under clients/) against a router with
/// a token while two clients listen, and checks what they got.
async fn drives_every_command(interpreter: &str, script: &str) {
    let (_echo, echo_addr) =
        echo_backend_with(&scratch_file(&format!("{interpreter}-client-echo.jsonl")), &["--greet"], "echo");
    let token = "router-client-token";
    let stack = Stack::start(StackOptions {
        backend: Some(echo_addr),
        token: Some(token.into()),
        gateway_token: Some("router-client-gateway-token".into()),
        ..Default::default()
    });
    let (mut a, a_id) = greeted(&stack).await;
    let (mut b, b_id) = greeted(&stack).await;

    let test = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients").join(script);
    let out = Command::new(interpreter)
        .arg(&test)
        .env("ROUTER_URL", format!("http://127.0.0.1:{}", stack.router_http_port))
        .env("ROUTER_TOKEN", token)
        .env("SESSION_A", &a_id)
        .env("SESSION_B", &b_id)
        .output()
        .unwrap_or_else(|err| panic!("{interpreter} is installed (the README's test command installs it): {err}"));
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim_end().ends_with("ok"), "{script}: {said}");

    for expected in [r#"{"type":"bid","amount":120}"#, "to a", "to user 42", "only a"] {
        assert_eq!(a.recv().await, Message::text(expected));
    }
    let members = a.recv_json().await;
    assert_eq!((&members["event"], &members["members"][0]["user"]), (&json!("members"), &json!("ann")), "{members}");
    assert_eq!(b.recv().await, Message::text(r#"{"type":"bid","amount":120}"#), "a map goes as compact JSON text");
    assert_eq!(b.recv().await, Message::text("not to a"));
    assert_eq!(b.recv().await, Message::binary(vec![0u8, 1, 255]));
    let body = json!({"sessions": [a_id, b_id], "data": "nothing before this"}).to_string();
    e2e::http::request_with_token(stack.router_http_port, "POST", "/v1/send", &body, Some(token)).unwrap();
    for client in [&mut a, &mut b] {
        assert_eq!(client.recv().await, Message::text("nothing before this"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_php_router_client_drives_every_command() {
    drives_every_command("php", "php/tests/router_test.php").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_router_client_drives_every_command_and_outlives_an_idle_close() {
    drives_every_command("python3", "python/tests/router_test.py").await;
}
