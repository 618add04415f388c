//! The nginx configs in nginx/, run by real nginx. Fixed ports (the ones
//! the configs name), so this is a test binary of its own.

use std::path::Path;
use std::process::Command;

use e2e::processes::wait_for_port;
use e2e::{Client, Proc, SseClient};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn config(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nginx").join(name).canonicalize().unwrap().display().to_string()
}

/// nginx with `conf`, its prefix the repository's root (as the configs say).
fn nginx(conf: &str, name: &str) -> Proc {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap();
    Proc::spawn("nginx", &["-p", root.to_str().unwrap(), "-e", "stderr", "-c", &config(conf)], name).stopped_by("TERM")
}

fn curl(body: &str, url: &str) -> Value {
    let output = Command::new("curl").args(["-s", "-d", body, url]).output().expect("curl");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&output.stdout)))
}

#[test]
fn curl_through_nginx_debug_conf_reaches_the_chat_app() {
    let _router = Proc::project("router", &["--listen", "127.0.0.1:9010", "--http", "127.0.0.1:9011"], "router");
    wait_for_port(9010, "router");
    let _app = Proc::project("chat-app", &["--listen", "127.0.0.1:9001", "--router", "127.0.0.1:9010"], "chat-app");
    wait_for_port(9001, "chat-app");
    let _nginx = nginx("debug.conf", "nginx-debug");
    wait_for_port(8080, "nginx");

    let url = "http://127.0.0.1:8080/chat?SESSIONID=aaaaaaaaaaaaaaaa";
    let reply = curl(r#"{"type":"login","name":"xxx"}"#, url);
    assert_eq!(reply, json!({"type": "list", "list": [{"name": "xxx", "id": "aaaaaaaaaaaaaaaa"}]}));
    let reply = curl("{not json", url);
    assert_eq!((reply["type"].as_str(), reply["code"].as_u64()), (Some("error"), Some(400)), "{reply}");

    // The PHP example under php-fpm, its params made by nginx from the query.
    let fpm_conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/php/fpm.conf");
    let fpm_conf = fpm_conf.to_str().unwrap();
    let _fpm =
        Proc::spawn(e2e::processes::php_fpm_binary(), &["-y", fpm_conf, "-F", "-R"], "php-fpm").stopped_by("TERM");
    wait_for_port(9003, "php-fpm");
    let reply = curl("", "http://127.0.0.1:8080/php/params.php?SESSIONID=aaaaaaaaaaaaaaaa&EVENT=1&x=1");
    let seen = &reply["connected"];
    assert_eq!((&seen["SESSIONID"], &seen["EVENT"]), (&json!("aaaaaaaaaaaaaaaa"), &json!("1")), "{reply}");
    let reply = curl("hello", "http://127.0.0.1:8080/php/params.php?SESSIONID=aaaaaaaaaaaaaaaa");
    assert_eq!(reply, json!({"echo": "hello", "session": "aaaaaaaaaaaaaaaa"}), "a message has no EVENT");
}

/// The edge carries WebSockets and SSE sessions to the gateways, and names
/// the client: a gateway that trusts nginx sees the client's own address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_edge_conf_carries_websockets_to_the_gateways() {
    let _echo = Proc::project("echo-app", &["--listen", "127.0.0.1:19302", "--report-connect"], "echo");
    wait_for_port(19302, "echo");
    let _gateways: Vec<Proc> = [9005, 9006]
        .iter()
        .map(|port| {
            let listen = format!("127.0.0.1:{port}");
            let args = ["--listen", &listen, "--backend", "127.0.0.1:19302", "--trusted-proxy", "127.0.0.1/32"];
            let gateway = Proc::project("gateway", &args, &format!("gateway-{port}"));
            wait_for_port(*port, "gateway");
            gateway
        })
        .collect();
    let _nginx = nginx("edge.conf", "nginx-edge");
    wait_for_port(8443, "nginx");
    let client_ip = "127.0.0.5".parse().unwrap();
    let mut client = Client::try_connect("ws://127.0.0.1:8443/", &[], Some(client_ip)).await.unwrap();
    assert_eq!(client.recv_json().await["REMOTE_ADDR"], "127.0.0.5", "the client's address, not nginx's");
    client.send(Message::text("through the edge")).await;
    assert_eq!(client.recv().await, Message::text("through the edge"));

    // An SSE session too: each event passes at once (proxy_buffering off),
    // and ip_hash takes the client's posts to the gateway of its stream.
    let mut sse = SseClient::open(8443, "/", &[]).unwrap();
    assert_eq!(sse.recv_json()["TRANSPORT"], "sse");
    for n in 0..5 {
        assert_eq!(sse.send(&format!("post {n}")), 202);
        assert_eq!(sse.recv(), format!("post {n}"));
    }
}
