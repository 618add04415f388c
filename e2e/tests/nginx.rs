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

/// nginx/debug.conf as PROTOCOL.md sets it up: curl reaches chat-app, and
/// the PHP examples under php-fpm's debug pool, with the params of
/// examples/php/params.conf, while a gateway holds every worker of the
/// other pool (its kept-alive connections) and gives its clients the same
/// params from the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_nginx_debug_conf_reaches_chat_app_and_php_beside_a_gateway() {
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

    // The PHP examples under php-fpm, its two pools from the shipped file.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap();
    let fpm_conf = root.join("examples/php/fpm.conf");
    let fpm_conf = fpm_conf.to_str().unwrap();
    let _fpm =
        Proc::spawn(e2e::processes::php_fpm_binary(), &["-y", fpm_conf, "-F", "-R"], "php-fpm").stopped_by("TERM");
    wait_for_port(9003, "php-fpm's gateway pool");
    wait_for_port(9004, "php-fpm's debug pool");

    // A gateway on the first pool, as skeleton.php's header runs one, whose
    // kept-alive connections hold all four of its workers.
    let (port, admin) = (e2e::free_port(), e2e::free_port());
    let (listen, admin_addr) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin}"));
    let script = format!("SCRIPT_FILENAME={}", root.join("examples/php/params.php").display());
    let params_file = root.join("examples/php/params.conf");
    let args = ["--listen", &listen, "--admin", &admin_addr, "--backend", "127.0.0.1:9003,max_conns=4"];
    let args = [&args[..], &["--param", &script, "--param-file", params_file.to_str().unwrap()]].concat();
    let _gateway = Proc::project("gateway", &args, "gateway");
    wait_for_port(port, "gateway");
    let held = r#"gateway_backend_connections{pool="default",backend="127.0.0.1:9003"}"#;
    let ws_url = format!("ws://{listen}/");
    let mut clients = Vec::new();
    while e2e::metric(admin, held) < 4.0 {
        assert!(clients.len() < 80, "the gateway never held 4 connections: {}", e2e::metric(admin, held));
        // Eight connect events at once, so that four are in flight together.
        let batch = (0..8).map(|_| Client::connect(&ws_url));
        for mut client in futures_util::future::join_all(batch).await {
            let connected = client.recv_json().await;
            assert_eq!(connected["connected"]["ROUTER_HTTP"], "http://127.0.0.1:9011", "from params.conf");
            clients.push(client);
        }
    }

    let started = std::time::Instant::now();
    let output = Command::new("curl")
        .args(["-s", "-m", "5", "http://127.0.0.1:8080/php/params.php?SESSIONID=aaaaaaaaaaaaaaaa&EVENT=1&x=1"])
        .output()
        .expect("curl");
    let waited = started.elapsed();
    let reply: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no answer in {waited:?}: {}", String::from_utf8_lossy(&output.stdout)));
    assert!(waited < std::time::Duration::from_secs(1), "curl waited {waited:?} behind the gateway's connections");
    let seen = &reply["connected"];
    assert_eq!((&seen["SESSIONID"], &seen["EVENT"]), (&json!("aaaaaaaaaaaaaaaa"), &json!("1")), "{reply}");
    assert_eq!(seen["ROUTER_HTTP"], "http://127.0.0.1:9011", "the same param, from the same file");
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
