//! clients/php/Router.php against a real router, with real clients on a
//! real gateway: its PHP test checks every call's result and error, and
//! this checks what the clients received, in order.

use std::path::Path;
use std::process::Command;

use e2e::processes::{echo_backend_with, scratch_file};
use e2e::{Client, Stack, StackOptions};
use tokio_tungstenite::tungstenite::Message;

async fn greeted(stack: &Stack) -> (Client, String) {
    let mut client = Client::connect(&stack.ws_url("/")).await;
    let Message::Text(id) = client.recv().await else { panic!("expected the greeting") };
    (client, id.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_php_router_client_drives_every_command() {
    let (_echo, echo_addr) = echo_backend_with(&scratch_file("php-client-echo.jsonl"), &["--greet"], "echo");
    let token = "php-client-token";
    let stack = Stack::start(StackOptions {
        backend: Some(echo_addr),
        token: Some(token.into()),
        gateway_token: Some("php-client-gateway-token".into()),
        ..Default::default()
    });
    let (mut a, a_id) = greeted(&stack).await;
    let (mut b, b_id) = greeted(&stack).await;

    let test = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/php/tests/router_test.php");
    let out = Command::new("php")
        .arg(&test)
        .env("ROUTER_URL", format!("http://127.0.0.1:{}", stack.router_http_port))
        .env("ROUTER_TOKEN", token)
        .env("SESSION_A", &a_id)
        .env("SESSION_B", &b_id)
        .output()
        .expect("php is installed (the README's test command installs it)");
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim_end().ends_with("ok"), "router_test.php: {said}");

    for expected in [r#"{"type":"bid","amount":120}"#, "to a", "to user 42", "only a"] {
        assert_eq!(a.recv().await, Message::text(expected));
    }
    assert_eq!(b.recv().await, Message::text(r#"{"type":"bid","amount":120}"#), "an array goes as compact JSON text");
    assert_eq!(b.recv().await, Message::text("not to a"));
    assert_eq!(b.recv().await, Message::binary(vec![0u8, 1, 255]));
    b.expect_silence(std::time::Duration::from_millis(200)).await;
}
