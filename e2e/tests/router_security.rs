//! A router with tokens refuses every unauthenticated caller: HTTP,
//! binary-protocol backends (the backends' token) and gateway links (the
//! gateways' own). Without a token it will not listen beyond loopback.

use std::time::Duration;

use e2e::processes::{local, wait_for_port};
use e2e::{chat, fooking, free_port, http, Client, Proc, Stack, StackOptions};
use protocol::cmd::Payload;
use protocol::RouterClient;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "correct-horse-battery-staple";
const GATEWAY_TOKEN: &str = "gateway-horse-battery-staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_http_binary_and_gateway_links() {
    let stack = Stack::start(StackOptions {
        token: Some(TOKEN.into()),
        gateway_token: Some(GATEWAY_TOKEN.into()),
        ..Default::default()
    });
    let mut client = Client::connect(&stack.ws_url("/")).await;
    let id = chat::login(&mut client, "guarded", &[]).await;
    let body = json!({"sessions": [id], "data": "pushed"}).to_string();

    for token in [None, Some("wrong")] {
        let (status, reply) =
            http::request_with_token(stack.router_http_port, "POST", "/v1/send", &body, token).unwrap();
        assert_eq!(status, 401, "{reply}");
        assert!(reply.contains(r#""code":"unauthorized""#), "{reply}");
    }
    let (status, _) = http::request_with_token(stack.router_http_port, "POST", "/v1/send", &body, Some(TOKEN)).unwrap();
    assert_eq!(status, 200);
    assert_eq!(client.recv().await, Message::text("pushed"));

    // fooking's client sends no AUTH: refused, and nothing is pushed.
    fooking::call(stack.router_port, &fooking::frame(fooking::SEND_MSG, id.as_bytes(), b"sneaky", false));
    let wrong = RouterClient::with_token(local(stack.router_port).to_string(), Some("wrong".into()));
    let _ = wrong.send(vec![id.parse().unwrap()], Payload::text("also sneaky")).await;
    // What follows is the next message: nothing sneaked in before it.
    let right = RouterClient::with_token(local(stack.router_port).to_string(), Some(TOKEN.into()));
    right.send(vec![id.parse().unwrap()], Payload::text("authenticated")).await.unwrap();
    assert_eq!(client.recv().await, Message::text("authenticated"));

    // A gateway without the gateways' token never links, nor one with the backends'.
    let router = local(stack.router_port).to_string();
    let backend = local(stack.app_port).to_string();
    let mut intruders = Vec::new();
    for (name, token) in [("intruder", None), ("intruder-with-backend-token", Some(TOKEN))] {
        let port = free_port();
        let listen = local(port).to_string();
        let mut args = vec!["--listen", &listen, "--backend", &backend, "--router", &router];
        args.extend(token.map(|token| ["--router-token", token]).into_iter().flatten());
        intruders.push(Proc::project("gateway", &args, name));
        wait_for_port(port, name);
    }
    let router_proc = stack.procs.iter().find(|p| p.name == "router").unwrap();
    let refused_links = || {
        let log = router_proc.log_text();
        log.lines().filter(|line| line.contains("missing or wrong token") && line.contains("gateway")).count()
    };
    assert!(e2e::eventually(Duration::from_secs(10), || refused_links() >= 2).await, "each intruder tried");
    let (_, info) = http::request_with_token(stack.router_http_port, "GET", "/v1/info", "", Some(TOKEN)).unwrap();
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["gateways"].as_array().unwrap().len(), 1, "only the gateway with the gateways' token: {info}");
    assert!(router_proc.log_text().contains("missing or wrong token"), "the refusal is logged");
}

#[test]
fn without_a_token_the_router_stays_on_loopback_unless_told() {
    let (port, http_port) = (free_port(), free_port());
    let args = ["--listen".to_owned(), format!("0.0.0.0:{port}"), "--http".to_owned(), local(http_port).to_string()];
    let mut refused = Proc::project("router", &args, "router-open");
    assert!(refused.wait_exit(Duration::from_secs(5)), "it exits instead of listening");
    assert!(refused.log_text().contains("refusing to listen on 0.0.0.0"), "{}", refused.log_text());

    let mut insecure = args.to_vec();
    insecure.push("--insecure".to_owned());
    let _allowed = Proc::project("router", &insecure, "router-insecure");
    wait_for_port(port, "router with --insecure");
}
