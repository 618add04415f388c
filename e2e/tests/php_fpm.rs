//! php-fpm, the real one, behind the gateway: over TCP and over a unix
//! socket, a plain PHP script sees the gateway's params and its replies
//! reach the client; a script written for fooking gets fooking's reply
//! semantics.

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::processes::{bin_dir, php_fpm, php_fpm_on_a_port};
use e2e::{Client, Stack, StackOptions};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A PHP script, by its path from the e2e crate.
fn script(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path).canonicalize().unwrap().display().to_string()
}

/// The stack with php-fpm at `backend` running `script` for every event,
/// and the gateway's other `args`.
fn php_stack(backend: String, script: &str, args: &[&str]) -> Stack {
    let mut gateway_args = vec!["--param".to_owned(), format!("SCRIPT_FILENAME={script}")];
    gateway_args.extend(args.iter().map(|a| a.to_string()));
    Stack::start(StackOptions { backend: Some(backend), gateway_args, ..Default::default() })
}

async fn php_sees_params_and_replies(backend: String) {
    let params_file = script("../examples/php/params.conf");
    let stack = php_stack(backend, &script("../examples/php/params.php"), &["--param-file", &params_file]);
    let mut client = Client::connect_with_headers(&stack.ws_url("/room?x=1"), &[("X-Team", "blue")]).await;
    let connected = client.recv_json().await;
    let seen = &connected["connected"];
    let session = seen["SESSIONID"].as_str().unwrap().to_owned();
    assert_eq!(session.len(), 16);
    assert_eq!(
        seen,
        &json!({"SESSIONID": session, "EVENT": "1", "REMOTE_ADDR": "127.0.0.1", "REQUEST_URI": "/room?x=1", "QUERY_STRING": "x=1", "HTTP_X_TEAM": "blue", "ROUTER_HTTP": "http://127.0.0.1:9011"})
    );
    client.send(Message::text("hello php")).await;
    assert_eq!(client.recv_json().await, json!({"echo": "hello php", "session": session}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_fpm_over_tcp() {
    let (_fpm, addr, _) = php_fpm_on_a_port("php-tcp", 2);
    php_sees_params_and_replies(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_fpm_over_a_unix_socket() {
    let dir = bin_dir().join("../e2e-logs/php-unix");
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("php.sock");
    let _ = std::fs::remove_file(&socket);
    let _fpm = php_fpm(socket.to_str().unwrap(), &dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "php-fpm never opened {}", socket.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    php_sees_params_and_replies(format!("unix:{}", socket.display())).await;
}

/// How a client leaves, in the close-event test.
#[derive(Clone, Copy, Debug)]
enum Leave {
    CloseDuringConnect,
    DropDuringConnect,
    DropDuringMessage,
    CloseDuringMessage,
    DropWhileIdle,
}

async fn connect_and_leave(url: String, leave: Leave) {
    let mut client = Client::connect(&url).await;
    if matches!(leave, Leave::CloseDuringConnect) {
        return client.close().await;
    }
    if matches!(leave, Leave::DropDuringConnect) {
        return client.kill();
    }
    assert_eq!(client.recv().await, Message::text("connected"));
    client.send(Message::text("bid")).await;
    match leave {
        Leave::DropDuringMessage => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client.kill()
        }
        Leave::CloseDuringMessage => client.close().await,
        _ => {
            assert_eq!(client.recv().await, Message::text("echo bid"));
            client.kill()
        }
    }
}

/// The events the script ran to their end, by session: `connect`,
/// `message` and `close` lines.
fn finished_events(log: &Path) -> std::collections::HashMap<String, Vec<String>> {
    let mut by_session: std::collections::HashMap<String, Vec<String>> = Default::default();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let (kind, session) = line.split_once(' ').unwrap();
        by_session.entry(session.to_owned()).or_default().push(kind.to_owned());
    }
    by_session
}

/// A slow PHP script (300 ms on connect and on messages) behind the
/// gateway, and clients that leave while their event is still with
/// php-fpm, in five ways, eight at once each: every connect the script
/// finished gets exactly one close event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_finished_connect_gets_one_close_event_from_php_fpm() {
    let (_fpm, addr, dir) = php_fpm_on_a_port("php-close-events", 8);
    let log = dir.join("events.log");
    let _ = std::fs::remove_file(&log);
    let script = script("php/slow_events.php");
    // php-fpm ties a worker to each kept-alive connection: no more
    // connections than workers, or a request waits behind idle ones.
    let event_log = format!("EVENT_LOG={}", log.display());
    let stack = php_stack(format!("{addr},max_conns=8"), &script, &["--param", &event_log]);
    let ways = [
        Leave::CloseDuringConnect,
        Leave::DropDuringConnect,
        Leave::DropDuringMessage,
        Leave::CloseDuringMessage,
        Leave::DropWhileIdle,
    ];
    let clients: Vec<_> = ways
        .iter()
        .flat_map(|way| std::iter::repeat_n(*way, 8))
        .map(|way| tokio::spawn(connect_and_leave(stack.ws_url("/"), way)))
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    // Every client is gone; the script takes 300 ms per event, 8 at a time.
    let deadline = Instant::now() + Duration::from_secs(20);
    let complete = |events: &std::collections::HashMap<String, Vec<String>>, sessions: usize| {
        events.len() == sessions && events.values().all(|kinds| kinds.iter().any(|k| k == "close"))
    };
    while !complete(&finished_events(&log), 40) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A duplicate would come before the close of a client that came after.
    connect_and_leave(stack.ws_url("/"), Leave::DropWhileIdle).await;
    while !complete(&finished_events(&log), 41) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = finished_events(&log);
    let mut wrong = Vec::new();
    for (session, kinds) in &events {
        let connects = kinds.iter().filter(|k| *k == "connect").count();
        let closes = kinds.iter().filter(|k| *k == "close").count();
        if connects != 1 || closes != 1 || kinds.last().map(String::as_str) != Some("close") {
            wrong.push(format!("{session}: {kinds:?}"));
        }
    }
    assert_eq!(events.len(), 41, "every client's connect (and the last one's) ran to its end: {events:?}");
    assert!(wrong.is_empty(), "sessions without exactly one connect, then one close last:\n{}", wrong.join("\n"));
}

/// A fooking backend sets `Content-Length` on every reply, the empty connect
/// and close replies too: its client gets nothing for those (as under
/// fooking), so every later reply stays in step; `Content-Offset` picks a
/// reply out of a larger body; a PHP fatal error (500, empty body) gets the
/// gateway's error frame; PHP's error_log lines are logged at the level
/// asked for, without colour codes in a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fooking_style_php_backend_gets_fookings_reply_semantics() {
    let (_fpm, addr, _) = php_fpm_on_a_port("php-fooking-style", 2);
    let stack = php_stack(addr, &script("php/fooking_style.php"), &["--backend-stderr-level", "info"]);
    let mut client = Client::connect(&stack.ws_url("/")).await;
    for word in ["one", "quiet", "two"] {
        client.send(Message::text(word)).await;
    }
    assert_eq!(client.recv().await, Message::text("echo one"), "no empty message for the connect reply");
    assert_eq!(client.recv().await, Message::text("echo two"), "nor for Content-Length: 0");
    client.send(Message::text("offset")).await;
    assert_eq!(client.recv().await, Message::text("picked"));
    client.send(Message::text("from-the-end")).await;
    assert_eq!(client.recv().await, Message::text("tail-6"));
    client.send(Message::text("fatal")).await;
    let error = client.recv_json().await;
    assert_eq!((error["type"].as_str(), error["code"].as_u64()), (Some("error"), Some(502)), "{error}");
    client.send(Message::text("log")).await;
    assert_eq!(client.recv().await, Message::text("echo log"));
    client.send(Message::text("last")).await;
    assert_eq!(client.recv().await, Message::text("echo last"), "the log went to php-fpm's log, not the client");

    let gateway = stack.procs.iter().find(|p| p.name == "gateway").unwrap();
    let log = gateway.log_text();
    let line = log.lines().find(|l| l.contains("fooking-style backend logged this")).expect("PHP's error_log line");
    assert!(line.contains(" INFO "), "--backend-stderr-level info: {line}");
    assert!(!log.contains('\x1b'), "no colour codes when stderr is a file");
}

/// examples/php/skeleton.php, the smallest backend, under php-fpm: it
/// welcomes, relays a message to the lobby through Router.php, and tells
/// the lobby when a client leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_php_skeleton_welcomes_relays_and_says_goodbye() {
    let (_fpm, addr, _) = php_fpm_on_a_port("php-skeleton", 2);
    let skeleton = script("../examples/php/skeleton.php");
    let stack = php_stack(format!("{addr},max_conns=2"), &skeleton, &["--param", "ROUTER_HTTP={router_http}"]);
    let mut a = Client::connect(&stack.ws_url("/")).await;
    let a_id = a.recv_json().await["session"].as_str().unwrap().to_owned();
    let mut b = Client::connect(&stack.ws_url("/")).await;
    assert_eq!(b.recv_json().await["type"], "welcome");
    a.send(Message::text("hello lobby")).await;
    assert_eq!(a.recv_json().await, json!({"type": "ok"}));
    assert_eq!(b.recv_json().await, json!({"type": "said", "session": a_id, "text": "hello lobby"}));
    a.close().await;
    assert_eq!(b.recv_json().await, json!({"type": "left", "session": a_id}));
}

/// nginx in front of `fpm` (a FastCGI address), every request to `script`,
/// on a free port: its port and process.
fn nginx_before(fpm: &str, script: &str, dir: &Path) -> (u16, e2e::Proc) {
    let port = e2e::free_port();
    let tmp = dir.display();
    let conf = dir.join("nginx.conf");
    let config = format!(
        "daemon off; worker_processes 1; error_log stderr warn; pid {tmp}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body; fastcgi_temp_path {tmp}/fastcgi; proxy_temp_path {tmp}/proxy;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            fastcgi_pass {fpm};
            fastcgi_param SCRIPT_FILENAME {script};
            fastcgi_param SESSIONID $arg_SESSIONID if_not_empty;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
        }}
    }}
}}
"
    );
    std::fs::write(&conf, config).unwrap();
    let nginx = e2e::Proc::spawn("nginx", &["-e", "stderr", "-c", conf.to_str().unwrap()], "nginx").stopped_by("TERM");
    e2e::processes::wait_for_port(port, "nginx");
    (port, nginx)
}

/// php-fpm without pinned workers: a gateway that opens a connection per
/// request (`keep_conn=off`) shares an `ondemand` pool of 4 workers with
/// nginx. 200 clients send at once; every one is answered, and a curl
/// through nginx to the same pool meanwhile answers within a second (with
/// kept connections the gateway holds every worker and the curl waits for
/// nginx's timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_and_nginx_share_an_ondemand_pool_without_pinned_workers() {
    let (_fpm, fpm_addr, dir) = e2e::processes::php_fpm_ondemand_on_a_port("php-ondemand", 4);
    let params = script("../examples/php/params.php");
    let stack = php_stack(format!("{fpm_addr},keep_conn=off,max_conns=64"), &params, &[]);
    let (nginx_port, _nginx) = nginx_before(&fpm_addr, &params, &dir);

    let url = stack.ws_url("/");
    let mut clients = Vec::new();
    for _ in 0..4 {
        let batch = (0..50).map(|_| Client::connect(&url));
        for mut client in futures_util::future::join_all(batch).await {
            assert!(client.recv_json().await["connected"]["SESSIONID"].is_string());
            clients.push(client);
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(Message::text(format!("m{i}"))).await;
    }
    let curl = tokio::task::spawn_blocking(move || {
        let asked = Instant::now();
        let url = format!("http://127.0.0.1:{nginx_port}/?SESSIONID=aaaaaaaaaaaaaaaa");
        let output = std::process::Command::new("curl").args(["-s", "-m", "10", "-d", "via nginx", &url]).output();
        (asked.elapsed(), String::from_utf8_lossy(&output.expect("curl").stdout).into_owned())
    });
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(client.recv_json().await["echo"], format!("m{i}"));
    }
    let (took, answer) = curl.await.unwrap();
    assert!(answer.contains("via nginx"), "nginx's curl: {answer:?}");
    assert!(took < Duration::from_secs(1), "nginx's curl waited {took:?} beside the gateway");
}
