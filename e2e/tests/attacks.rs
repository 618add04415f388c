//! The attacker's view: real processes, and a peer that tries to act as
//! someone else or to make the gateway spend without bound. Each test is
//! a boundary of docs/SECURITY.md.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::processes::{bin_dir, local};
use e2e::raw_ws::{self, deflate, recv_message};
use e2e::{
    chat, echo_backend_with, echo_stack, fooking, free_port, http, metric, scratch_file, Client, Stack, StackOptions,
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const BACKEND_TOKEN: &str = "backend-secret";
const GATEWAY_TOKEN: &str = "gateway-secret";

/// A plain HTTP request to the gateway; status and body.
fn gateway_http(stack: &Stack, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let (status, _, body) = http::exchange(stack.gateway_port, "POST", path, headers, body);
    (status, body)
}

/// A client of the chat, through the gateway with `--http-route /api/`,
/// tries to act as alice by every route it has: the query string of a
/// plain HTTP request, identity headers, an upgrade URL, a forged resume
/// token. Nothing it sends is taken for alice's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_act_as_another_session_by_any_route() {
    let stack =
        Stack::start(StackOptions { gateway_args: vec!["--http-route".into(), "/api/".into()], ..Default::default() });
    let (mut alice, alice_id, mut bob, bob_id) = chat::two_logged_in(&stack.ws_url("/")).await;
    let forged_msg = r#"{"type":"msg","text":"sent as alice","channel":0}"#;
    let as_alice = format!("/api/x?SESSIONID={alice_id}&EVENT=0");
    let (status, body) = gateway_http(&stack, &as_alice, &[], forged_msg);
    assert_ne!(status, 200, "the query string named alice: {body}");
    let logout = format!("/api/x?SESSIONID={alice_id}&EVENT=2");
    gateway_http(&stack, &logout, &[], "");
    let headers = [("SessionId", alice_id.as_str()), ("Event", "0")];
    gateway_http(&stack, "/api/x", &headers, forged_msg);
    gateway_http(&stack, "/api/x", &[("X-Session-Id", alice_id.as_str())], forged_msg);

    // An upgrade that names alice gets a session of its own.
    let url = stack.ws_url(&format!("/?SESSIONID={alice_id}&EVENT=0"));
    let mut mallory = Client::connect_with_headers(&url, &headers).await;
    mallory.send_json(json!({"type": "login", "name": "mallory"})).await;
    // Its list, and its own login broadcast, in either order.
    let replies = mallory.recv_json_unordered(2).await;
    let list = replies.iter().find(|r| r["type"] == "list").unwrap();
    let ids: Vec<&str> = list["list"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.iter().filter(|id| **id == alice_id).count(), 1, "mallory is not alice: {list}");
    // And a resume token for alice's session that this cluster did not sign is refused.
    let forged = format!("{alice_id}.0.{}", "0".repeat(64));
    let mut resumed = Client::connect(&stack.ws_url(&format!("/?resume={forged}"))).await;
    assert_eq!(resumed.expect_close().await.map(|f| u16::from(f.code)), Some(4100));

    for client in [&mut alice, &mut bob] {
        let login = client.recv_json().await;
        assert_eq!((login["type"].as_str(), login["name"].as_str()), (Some("login"), Some("mallory")), "{login}");
    }
    bob.send_json(json!({"type": "userlist"})).await;
    let list = bob.recv_json().await;
    assert!(list["list"].as_array().unwrap().iter().any(|u| u["id"] == alice_id), "alice is still logged in: {list}");
    assert!(list["list"].as_array().unwrap().iter().any(|u| u["id"] == bob_id));
    alice.expect_silence(Duration::from_millis(300)).await;
    bob.expect_silence(Duration::from_millis(300)).await;
}

/// A stack whose router takes backends with one token and gateways with
/// another; alice is connected and in "room".
async fn guarded_stack() -> (Stack, Client, String) {
    let stack = Stack::start(StackOptions {
        token: Some(BACKEND_TOKEN.into()),
        gateway_token: Some(GATEWAY_TOKEN.into()),
        ..Default::default()
    });
    let mut alice = Client::connect(&stack.ws_url("/")).await;
    let alice_id = chat::login(&mut alice, "alice", &[]).await;
    let (status, _) = post(&stack, "join", json!({"channel": "room", "sessions": [alice_id]}));
    assert_eq!(status, 200);
    (stack, alice, alice_id)
}

fn post(stack: &Stack, command: &str, body: Value) -> (u16, Value) {
    let (status, text) = http::request_with_token(
        stack.router_http_port,
        "POST",
        &format!("/v1/{command}"),
        &body.to_string(),
        Some(BACKEND_TOKEN),
    )
    .unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A peer on the router's binary port that opens as gateway `server_id`
/// with `token`.
fn fake_gateway(stack: &Stack, server_id: i32, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(local(stack.router_port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut data = server_id.to_be_bytes().to_vec();
    data.extend_from_slice(&7i32.to_be_bytes());
    data.extend_from_slice(token.as_bytes());
    stream.write_all(&fooking::frame(1, b"", &data, false)).unwrap();
    stream
}

/// The data of a move frame addressed to gateway `server_id`, worker 7.
fn addressed(server_id: i32, rest: &[u8]) -> Vec<u8> {
    let mut data = server_id.to_be_bytes().to_vec();
    data.extend_from_slice(&7i32.to_be_bytes());
    data.extend_from_slice(rest);
    data
}

/// alice still gets what is sent to her, and is still in her channel.
async fn alice_is_untouched(stack: &Stack, alice: &mut Client, alice_id: &str) {
    let (_, reply) = post(stack, "send", json!({"sessions": [alice_id], "data": "still yours"}));
    assert_eq!(reply["sessions"], 1, "the router still routes alice to her gateway: {reply}");
    assert_eq!(alice.recv().await, Message::text("still yours"));
    let (_, count) = post(stack, "count", json!({"channel": "room"}));
    assert_eq!(count["count"], 1, "alice is still in her channel");
}

/// Whoever holds the backends' token cannot link as a gateway: its AUTH is
/// refused, and what it sends next never reaches the router's routing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_token_cannot_open_a_gateway_link() {
    let (stack, mut alice, alice_id) = guarded_stack().await;
    let mut attacker = fake_gateway(&stack, 666, BACKEND_TOKEN);
    let _ = attacker.write_all(&fooking::frame(2, alice_id.as_bytes(), b"", false));
    let _ = attacker.write_all(&fooking::frame(110, alice_id.as_bytes(), &addressed(666, b""), false));
    assert_eq!(attacker.read(&mut [0; 8]).unwrap_or(0), 0, "the router closed the connection");
    drop(attacker);
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice_is_untouched(&stack, &mut alice, &alice_id).await;
}

/// A peer holding the gateways' token (a compromised gateway) still cannot
/// take, end or pull a session another gateway holds: CONN, MOVING, CLOSE
/// and HANDOVER for alice are ignored, and RESUME with a guessed
/// generation is refused without the client's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_cannot_take_end_or_pull_a_session_another_gateway_holds() {
    let (stack, mut alice, alice_id) = guarded_stack().await;
    let mut attacker = fake_gateway(&stack, 666, GATEWAY_TOKEN);
    let id = alice_id.as_bytes();
    for frame in [
        fooking::frame(2, id, b"", false),
        fooking::frame(110, id, &addressed(666, b""), false),
        fooking::frame(3, id, b"", false),
        fooking::frame(112, id, &addressed(666, b"forged state"), false),
    ] {
        attacker.write_all(&frame).unwrap();
    }
    // Guessed generations, with a proof that is not the token's MAC.
    for generation in 0u32..4 {
        let ask = [&generation.to_be_bytes()[..], "f".repeat(64).as_bytes()].concat();
        attacker.write_all(&fooking::frame(109, id, &ask, false)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice_is_untouched(&stack, &mut alice, &alice_id).await;
    // What came back to the attacker: heartbeats and refusals, no state.
    attacker.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut seen = Vec::new();
    let _ = attacker.read_to_end(&mut seen);
    let kinds = frame_kinds(&seen);
    assert!(!kinds.contains(&112), "no HANDOVER reached the attacker: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == 113).count(), 4, "each RESUME refused: {kinds:?}");
    alice.send_json(json!({"type": "userlist"})).await;
    assert_eq!(alice.recv_json().await["type"], "list", "alice's connection was never taken over");
}

/// A compromised gateway's channel counts (CH_SUB, CH_UNSUB) steer only
/// the publishes sent to itself: an "empty" for alice's channel, with the
/// newest version and every change seen, leaves her gateway's route alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateways_channel_counts_steer_only_publishes_to_itself() {
    let (stack, mut alice, alice_id) = guarded_stack().await;
    let mut attacker = fake_gateway(&stack, 666, GATEWAY_TOKEN);
    let count = |kind: u16, members: u32| {
        let data = [&u64::MAX.to_be_bytes()[..], &u64::MAX.to_be_bytes(), &members.to_be_bytes(), b"room"].concat();
        fooking::frame(kind, b"", &data, false)
    };
    attacker.write_all(&count(11, 0)).unwrap();
    attacker.write_all(&count(10, 1_000_000)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, reply) = post(&stack, "publish", json!({"channel": "room", "data": "to the room"}));
    assert_eq!(reply["delivered_to_gateways"], 2, "alice's gateway and the one that asked: {reply}");
    assert_eq!(alice.recv().await, Message::text("to the room"));
    attacker.write_all(&count(11, 0)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, reply) = post(&stack, "publish", json!({"channel": "room", "data": "again"}));
    assert_eq!(reply, json!({"sessions": 1, "delivered_to_gateways": 1}), "the attacker took itself out, no one else");
    assert_eq!(alice.recv().await, Message::text("again"));
    let lying = fooking::frame(10, b"", &[0u8; 20], false);
    attacker.write_all(&lying).unwrap();
    assert!(attacker.read_to_end(&mut Vec::new()).is_ok(), "a CH_SUB that counts no member closes the link");
    alice_is_untouched(&stack, &mut alice, &alice_id).await;
}

/// A compromised gateway cannot show a session another gateway holds as
/// away (or back) to its presence channels, nor put it in one: its
/// SESSIONS_AWAY, SESSIONS_BACK and CH_ADD for alice are ignored, so no
/// member hears a false "offline" or "join".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_cannot_show_another_gateways_session_away_or_join_it_to_a_presence_channel() {
    let (stack, mut alice, alice_id) = guarded_stack().await;
    let (status, _) =
        post(&stack, "join", json!({"channel": "presence-room", "sessions": [alice_id], "user": "alice"}));
    assert_eq!(status, 200);
    assert_eq!(alice.recv_json().await["event"], "members");
    let mut attacker = fake_gateway(&stack, 666, GATEWAY_TOKEN);
    let id = alice_id.as_bytes();
    for frame in [
        fooking::frame(117, id, b"", false),
        fooking::frame(118, id, b"", false),
        fooking::frame(117, id, b"", false),
        fooking::frame(7, id, b"presence-other", false),
    ] {
        attacker.write_all(&frame).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.expect_silence(Duration::from_millis(300)).await;
    let (_, listed) = post(&stack, "presence", json!({"channel": "presence-room"}));
    assert_eq!(listed["members"], json!([{"session": alice_id, "user": "alice", "online": true}]), "{listed}");
    let (_, other) = post(&stack, "presence", json!({"channel": "presence-other"}));
    assert_eq!(other["count"], 0, "{other}");
    alice_is_untouched(&stack, &mut alice, &alice_id).await;
}

const ADMIN_TOKEN: &str = "attack-admin-secret";

/// The operator's page and its JSON open only to `--admin-token`, as a
/// Bearer token or a Basic password: not to the backends' token, not to
/// the gateways', not to nothing; so no one else can read the cluster or
/// kick a session from there. A router without `--admin-token` (but with
/// tokens) has no page, and one whose admin token is another's refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_page_opens_only_to_the_admin_token() {
    let stack = Stack::start(StackOptions {
        token: Some(BACKEND_TOKEN.into()),
        gateway_token: Some(GATEWAY_TOKEN.into()),
        router_args: vec!["--admin-token".into(), ADMIN_TOKEN.into()],
        ..Default::default()
    });
    let mut alice = Client::connect(&stack.ws_url("/")).await;
    let alice_id = chat::login(&mut alice, "alice", &[]).await;
    assert_eq!(post(&stack, "join", json!({"channel": "room", "sessions": [alice_id]})).0, 200);
    let basic = |password: &str| {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("operator:{password}")))
    };
    let kick = json!({"session": alice_id}).to_string();
    let lookup = format!("/admin/api/sessions?id={alice_id}");
    let calls = [
        ("GET", "/admin/", ""),
        ("GET", "/admin/api/overview", ""),
        ("GET", &lookup, ""),
        ("POST", "/admin/api/kick", &kick),
    ];
    let wrong = [
        None,
        Some(format!("Bearer {BACKEND_TOKEN}")),
        Some(format!("Bearer {GATEWAY_TOKEN}")),
        Some(basic(BACKEND_TOKEN)),
        Some(basic("")),
        Some(format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])),
        Some(format!("Bearer {ADMIN_TOKEN}x")),
    ];
    for (method, path, body) in calls {
        for auth in &wrong {
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let (status, headers, text) = http::exchange(stack.router_http_port, method, path, &headers, body);
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {text}");
            assert!(headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("www-authenticate") && v.starts_with("Basic")));
        }
    }
    alice_is_untouched(&stack, &mut alice, &alice_id).await;
    for auth in [format!("Bearer {ADMIN_TOKEN}"), basic(ADMIN_TOKEN)] {
        let (status, _, page) =
            http::exchange(stack.router_http_port, "GET", "/admin/", &[("Authorization", &auth)], "");
        assert_eq!(status, 200);
        assert!(page.contains("fk router"), "the page");
    }
    let (status, _, _) =
        http::exchange(stack.router_http_port, "GET", &lookup, &[("Authorization", &basic(ADMIN_TOKEN))], "");
    assert_eq!(status, 200);

    // Tokens, but no --admin-token: no page, whatever is presented.
    let without = Stack::start(StackOptions {
        token: Some(BACKEND_TOKEN.into()),
        gateway_token: Some(GATEWAY_TOKEN.into()),
        ..Default::default()
    });
    let bearer = format!("Bearer {BACKEND_TOKEN}");
    let (status, _, text) =
        http::exchange(without.router_http_port, "GET", "/admin/api/overview", &[("Authorization", &bearer)], "");
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("--admin-token"), "{text}");
    // An operator's token that is another's opens two doors with one key.
    let (port, http_port) = (local(free_port()).to_string(), local(free_port()).to_string());
    let same = ["--listen", &port, "--http", &http_port, "--token", "t", "--gateway-token", "g", "--admin-token", "t"];
    let output = std::process::Command::new(bin_dir().join("router")).args(same).output().unwrap();
    assert!(!output.status.success(), "started with --admin-token = --token");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--admin-token must differ"));
}

/// The types of the whole frames in `bytes`.
fn frame_kinds(mut bytes: &[u8]) -> Vec<u16> {
    let mut kinds = Vec::new();
    while bytes.len() >= 8 {
        let slen = u16::from_be_bytes([bytes[2], bytes[3]]) as usize;
        let len = (u32::from_be_bytes(bytes[4..8].try_into().unwrap()) & 0x7fff_ffff) as usize;
        if bytes.len() < 8 + slen + len {
            break;
        }
        kinds.push(u16::from_be_bytes([bytes[0], bytes[1]]));
        bytes = &bytes[8 + slen + len..];
    }
    kinds
}

/// A request that carries its headers along: past `--max-header-bytes`
/// (8 KiB) an upgrade or a plain request is refused with 431, so no event
/// carries more than that. Messages queued for the backend are bounded in
/// bytes per session, and requests in flight to the backends in bytes in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_message_amplification_are_bounded() {
    let log = scratch_file("events.jsonl");
    let (_echo, echo_addr) = echo_backend_with(&log, &["--slow-ms", "1500"], "echo");
    let admin = free_port();
    let stack = Stack::start(StackOptions {
        backend: Some(echo_addr),
        gateway_args: vec![
            "--http-route".into(),
            "/api/".into(),
            "--admin".into(),
            local(admin).to_string(),
            "--backend-inflight-bytes".into(),
            "400000".into(),
        ],
        ..Default::default()
    });
    let big = "h".repeat(1024);
    let headers: Vec<(&'static str, &str)> = HEADER_NAMES.iter().map(|name| (*name, big.as_str())).collect();
    let refused = Client::try_connect(&stack.ws_url("/"), &headers, None).await.err();
    assert_eq!(refused.as_deref(), Some("HTTP 431"), "a 16 KiB upgrade");
    let plain: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, *v)).collect();
    assert_eq!(gateway_http(&stack, "/api/x", &plain, "").0, 431, "a 16 KiB plain request");
    assert!(metric(admin, r#"gateway_connections_refused_total{reason="headers_too_large"}"#) >= 2.0);

    // One slow message, then more than --max-pending-bytes (1 MiB) behind it.
    let mut client = Client::connect(&stack.ws_url("/")).await;
    client.send(Message::text("sleep")).await;
    let chunk = "m".repeat(400_000);
    for _ in 0..3 {
        client.send(Message::text(chunk.clone())).await;
    }
    let refusal = client.recv_json().await;
    assert_eq!((refusal["source"].as_str(), refusal["code"].as_u64()), (Some("gateway"), Some(429)), "{refusal}");
    assert!(metric(admin, "gateway_pending_bytes") <= (1 << 20) as f64);

    // Two other sessions' 300 KB messages: one at a time within 400,000 bytes in flight.
    let mut others = Vec::new();
    for _ in 0..2 {
        let mut other = Client::connect(&stack.ws_url("/")).await;
        other.send(Message::text(format!("sleep{}", "s".repeat(300_000)))).await;
        others.push(other);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert!(metric(admin, "gateway_backend_inflight_bytes") <= 400_000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for mut other in others {
        assert!(other.recv().await.into_text().unwrap().starts_with("sleep"), "each was answered in its turn");
    }
}

/// A decompression bomb: a 10 KB permessage-deflate frame that inflates
/// to 10 MB. The gateway stops inflating at --max-message and closes with
/// 1009; the backend never sees any of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_is_stopped_at_the_message_limit() {
    let log = scratch_file("events.jsonl");
    let (_echo, echo_addr) = echo_backend_with(&log, &[], "echo");
    let admin = free_port();
    let stack = Stack::start(StackOptions {
        backend: Some(echo_addr),
        gateway_args: vec!["--admin".into(), local(admin).to_string(), "--max-message".into(), "65536".into()],
        ..Default::default()
    });
    let mut attacker = raw_ws::connect(stack.gateway_port, "permessage-deflate").await;
    let bomb = deflate(&vec![b'a'; 10_000_000]);
    assert!(bomb.len() < 20_000, "{} bytes", bomb.len());
    attacker.send_frame(raw_ws::TEXT, true, true, &bomb).await.unwrap();
    assert_eq!(recv_message(&mut attacker).await.close_code(), Some(1009));
    assert_eq!(metric(admin, r#"gateway_client_closes_total{reason="too_big"}"#), 1.0);
    assert_eq!(metric(admin, "gateway_messages_in_total"), 0.0, "nothing reached the backend");
}

const HEADER_NAMES: [&str; 16] = [
    "X-Pad-0", "X-Pad-1", "X-Pad-2", "X-Pad-3", "X-Pad-4", "X-Pad-5", "X-Pad-6", "X-Pad-7", "X-Pad-8", "X-Pad-9",
    "X-Pad-a", "X-Pad-b", "X-Pad-c", "X-Pad-d", "X-Pad-e", "X-Pad-f",
];

/// A PHP script that writes STDOUT forever: the gateway stops reading at
/// `--max-response-bytes`, the client gets the usual backend-failure error
/// and stays connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_writes_forever_is_cut_off() {
    let (_fpm, fpm_addr, dir) = e2e::processes::php_fpm_on_a_port("php-forever", 2);
    let script = dir.canonicalize().unwrap().join("forever.php");
    std::fs::write(&script, "<?php\nif (($_SERVER['EVENT'] ?? '') !== '') return;\nwhile (true) { echo str_repeat('x', 65536); flush(); }\n").unwrap();
    let admin = free_port();
    let stack = Stack::start(StackOptions {
        backend: Some(fpm_addr),
        gateway_args: vec![
            "--param".into(),
            format!("SCRIPT_FILENAME={}", script.display()),
            "--admin".into(),
            local(admin).to_string(),
        ],
        ..Default::default()
    });
    let mut client = Client::connect(&stack.ws_url("/")).await;
    let started = Instant::now();
    client.send(Message::text("go")).await;
    let error = client.recv_json().await;
    assert_eq!(error, json!({"type": "error", "source": "gateway", "code": 503, "message": "backend unavailable"}));
    assert!(started.elapsed() < Duration::from_secs(5), "cut off in {:?}", started.elapsed());
    assert_eq!(metric(admin, "gateway_backend_responses_too_large_total"), 1.0);
    assert!(stack.proc("gateway").log_text().contains("--max-response-bytes"), "the log says why");
}

/// An empty or blank secret would turn a check off: every binary refuses
/// to start with one.
#[test]
fn empty_secrets_are_refused_at_start() {
    let port = local(free_port()).to_string();
    let http = local(free_port()).to_string();
    let cases: [(&str, Vec<&str>); 6] = [
        ("router", vec!["--listen", "0.0.0.0:0", "--http", &http, "--token", "", "--gateway-token", "g"]),
        ("router", vec!["--listen", &port, "--http", &http, "--token", "t", "--gateway-token", "  "]),
        ("gateway", vec!["--listen", &port, "--router-token", ""]),
        ("gateway", vec!["--listen", &port, "--resume-secret", " "]),
        ("chat-app", vec!["--listen", &port, "--cookie-secret", ""]),
        ("chat-app", vec!["--listen", &port, "--operator-token", "\t"]),
    ];
    for (binary, args) in cases {
        let output = std::process::Command::new(bin_dir().join(binary)).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{binary} {args:?} started");
        assert!(stderr.contains("empty"), "{binary} {args:?} says why: {stderr}");
    }
}

/// The queue's `offline/<uid>` frees a player's slot: an operator's call,
/// refused without the operator's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_offline_call_needs_the_operator_token() {
    let stack = Stack::start(StackOptions {
        gateway_args: vec!["--http-route".into(), "/api/".into()],
        app_args: vec!["--operator-token".into(), "op-secret".into()],
        ..Default::default()
    });
    let json_headers = [("Content-Type", "application/json")];
    let (status, body) = gateway_http(&stack, "/api/v1/game/offline/1", &json_headers, "");
    assert_eq!(status, 401, "{body}");
    let wrong = [("Authorization", "Bearer guess")];
    assert_eq!(gateway_http(&stack, "/api/v1/game/offline/1", &wrong, "").0, 401);
    let right = [("Authorization", "Bearer op-secret")];
    let (_, body) = gateway_http(&stack, "/api/v1/game/offline/1", &right, "");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], 404, "no such player, but the call was taken");
}

/// Logins are rate-limited per name, and the login cookie is `Secure`
/// when the edge says the request came over HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_limited_and_the_cookie_is_secure_over_https() {
    let stack =
        Stack::start(StackOptions { gateway_args: vec!["--http-route".into(), "/api/".into()], ..Default::default() });
    let json_headers = [("Content-Type", "application/json")];
    let account = json!({"username": "ann", "password": "right"}).to_string();
    assert_eq!(gateway_http(&stack, "/api/v1/game/register", &json_headers, &account).0, 200);
    let https = [("Content-Type", "application/json"), ("X-Forwarded-Proto", "https")];
    let (_, headers, _) = http::exchange(stack.gateway_port, "POST", "/api/v1/game/login", &https, &account);
    let cookie = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.clone());
    assert!(cookie.as_deref().is_some_and(|c| c.contains("; Secure")), "{cookie:?}");
    let guess = json!({"username": "ann", "password": "guess"}).to_string();
    let codes: Vec<u64> = (0..12)
        .map(|_| {
            let (_, body) = gateway_http(&stack, "/api/v1/game/login", &json_headers, &guess);
            serde_json::from_str::<Value>(&body).unwrap()["code"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 1).count(), 9, "wrong password, while attempts last: {codes:?}");
    assert_eq!(codes.last(), Some(&429), "then refused: {codes:?}");
}

/// A second connection from one address past `--max-connections-per-ip`
/// is refused; behind a `--trusted-proxy`, the address is the client's
/// as the proxy says, and only a trusted proxy may say it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped_and_only_trusted_proxies_name_the_client() {
    let log = scratch_file("events.jsonl");
    let (_echo, echo_addr) = echo_backend_with(&log, &["--report-connect"], "echo");
    let stack = Stack::start(StackOptions {
        backend: Some(echo_addr),
        gateway_args: vec![
            "--max-connections-per-ip".into(),
            "2".into(),
            "--trusted-proxy".into(),
            "127.0.0.1/32".into(),
        ],
        ..Default::default()
    });
    let url = stack.ws_url("/");
    let from = |ip: &str| Some(ip.parse().unwrap());
    let behind = |client: &'static str| [("X-Forwarded-For", client)];
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(Client::try_connect(&url, &[], from("127.0.0.9")).await.unwrap());
    }
    assert_eq!(Client::try_connect(&url, &[], from("127.0.0.9")).await.err().as_deref(), Some("HTTP 429"));
    // An untrusted peer's X-Forwarded-For is ignored: still 127.0.0.9.
    let spoofed = Client::try_connect(&url, &behind("10.9.9.9"), from("127.0.0.9")).await;
    assert_eq!(spoofed.err().as_deref(), Some("HTTP 429"));
    // Through the trusted proxy (127.0.0.1), each client counts apart.
    for _ in 0..2 {
        let mut client = Client::try_connect(&url, &behind("10.0.0.1"), from("127.0.0.1")).await.unwrap();
        assert_eq!(client.recv_json().await["REMOTE_ADDR"], "10.0.0.1");
        held.push(client);
    }
    let third = Client::try_connect(&url, &behind("10.0.0.1"), from("127.0.0.1")).await;
    assert_eq!(third.err().as_deref(), Some("HTTP 429"));
    let other = Client::try_connect(&url, &behind("203.0.113.5, 10.0.0.2"), from("127.0.0.1")).await;
    assert_eq!(other.unwrap().recv_json().await["REMOTE_ADDR"], "10.0.0.2", "the proxy's own entry");
    // A connection that ends gives its place back.
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Client::try_connect(&url, &behind("10.0.0.1"), from("127.0.0.1")).await.is_err() {
        assert!(Instant::now() < deadline, "the place never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resumable sessions keep what was written to them for a replay, and
/// keep it after their client drops. 2,000 of them, each sent 32 KB and
/// then dropped without a word, keep no more than
/// `--resume-buffer-total-bytes` in all: the gateway grows by the budget
/// and a few KB a session, not by what they were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_resumable_sessions_keep_no_more_than_the_resume_budget() {
    const SESSIONS: usize = 2000;
    const SENT: usize = 32 << 10;
    const BUDGET: usize = 8 << 20;
    /// What a parked session holds besides what it keeps for its client.
    const PER_SESSION: usize = 5 << 10;
    let admin = free_port();
    let (admin_addr, budget) = (local(admin).to_string(), BUDGET.to_string());
    let gateway_args = ["--admin", &admin_addr, "--resume-buffer-total-bytes", &budget, "--resume-grace-ms", "120000"];
    let (stack, _echo, _) = echo_stack(&[&gateway_args[..], &["--max-connect-rate-per-ip", "0"]].concat(), &[]);
    let before = stack.proc("gateway").rss();
    let url = stack.ws_url("/?resume=1");
    let payload = "r".repeat(SENT);
    for _ in 0..SESSIONS / 20 {
        futures_util::future::join_all((0..20).map(|_| async {
            let mut client = Client::connect(&url).await;
            assert_eq!(client.recv_json().await["type"], "session");
            client.send(Message::text(payload.clone())).await;
            assert_eq!(client.recv().await.len(), SENT, "echoed, so kept for a replay");
            client.kill();
        }))
        .await;
    }
    let all_offline = || metric(admin, "gateway_sessions_offline") == SESSIONS as f64;
    assert!(e2e::eventually(Duration::from_secs(30), all_offline).await, "every session parked");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kept = metric(admin, "gateway_resume_buffered_bytes");
    assert!(kept <= BUDGET as f64 && kept > (BUDGET / 2) as f64, "kept {kept} of a {BUDGET} budget");
    assert!(metric(admin, "gateway_resume_budget_dropped_total") > 0.0);
    let grown = stack.proc("gateway").rss().saturating_sub(before) as usize;
    let bound = BUDGET + SESSIONS * PER_SESSION;
    assert!(grown < bound, "the gateway grew by {grown} bytes, over {bound}: the budget and {PER_SESSION} a session");
    // A new session still works, and gives back what it kept when it ends.
    let mut client = Client::connect(&stack.ws_url("/")).await;
    client.send(Message::text("still served")).await;
    assert_eq!(client.recv().await, Message::text("still served"));
}

/// A connection that never upgrades counts against its address from the
/// moment it is accepted: one address holds `--max-connections-per-ip`
/// silent connections and its next get a 429 before a byte is read, while
/// another address still connects. TCP sessions take no handshake slot:
/// more of them than `--max-handshakes` are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_stop_at_their_address_cap_and_sessions_take_no_handshake_slot() {
    let (admin, tcp) = (free_port(), free_port());
    let (admin_addr, tcp_addr) = (local(admin).to_string(), local(tcp).to_string());
    let gateway_args =
        ["--admin", &admin_addr, "--listen-tcp", &tcp_addr, "--max-connections-per-ip", "5", "--max-handshakes", "8"];
    let (stack, _echo, _) = echo_stack(&gateway_args, &[]);
    let mut silent: Vec<TcpStream> = (0..40).map(|_| connect_from("127.0.0.7", stack.gateway_port)).collect();
    let refused_at_accept = || metric(admin, r#"gateway_connections_refused_total{reason="ip_connections"}"#) >= 35.0;
    assert!(e2e::eventually(Duration::from_secs(5), refused_at_accept).await, "35 refused without a request");
    assert_eq!(metric(admin, "gateway_handshakes"), 5.0, "the five it may hold");
    let mut answer = String::new();
    silent[39].set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = silent[39].read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "told why: {answer:?}");
    let upgrade = Client::try_connect(&stack.ws_url("/"), &[], Some("127.0.0.7".parse().unwrap())).await;
    assert_eq!(upgrade.err().as_deref(), Some("HTTP 429"));
    let mut other = Client::try_connect(&stack.ws_url("/"), &[], Some("127.0.0.8".parse().unwrap())).await.unwrap();
    other.send(Message::text("another address")).await;
    assert_eq!(other.recv().await, Message::text("another address"));

    // Twelve length-framed sessions at once, past eight handshake slots.
    let mut framed: Vec<TcpStream> = (0..12).map(|i| connect_from(&format!("127.0.2.{i}"), tcp)).collect();
    for (i, session) in framed.iter_mut().enumerate() {
        let body = format!("tcp {i}");
        session.write_all(&[&(body.len() as u32).to_be_bytes()[..], body.as_bytes()].concat()).unwrap();
        session.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reply = vec![0; 4 + body.len()];
        session.read_exact(&mut reply).unwrap();
        assert_eq!(&reply[4..], body.as_bytes(), "session {i} is served");
    }
    assert_eq!(metric(admin, "gateway_sessions"), 13.0);
    drop(silent);
}

/// A TCP connection to `port` from the local address `ip`.
fn connect_from(ip: &str, port: u16) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&std::net::SocketAddr::new(ip.parse().unwrap(), 0).into()).unwrap();
    socket.connect(&local(port).into()).unwrap();
    TcpStream::from(socket)
}

/// Before AUTH, the router's binary port holds a few KB per connection,
/// whatever a frame header announces: 1,000 unauthenticated connections
/// that each announce a frame of 1 MiB and 64 KiB of ids, and send part
/// of it, keep the router under 50 MB; an AUTH frame still opens a link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_router_connections_cannot_make_it_buffer() {
    let (stack, mut alice, alice_id) = guarded_stack().await;
    let mut header = vec![0, 5, 0xff, 0xff];
    header.extend_from_slice(&(1u32 << 20).to_be_bytes());
    let part = vec![b'x'; 64 << 10];
    let mut peers = Vec::new();
    for _ in 0..1000 {
        let mut peer = TcpStream::connect(local(stack.router_port)).unwrap();
        peer.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        let _ = peer.write_all(&header).and_then(|()| peer.write_all(&part));
        peers.push(peer);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = stack.proc("router").rss();
    assert!(rss < 50 << 20, "the router holds {rss} bytes for 1,000 unauthenticated peers");
    assert!(stack.proc("router").log_text().contains("exceeds the limit"), "the log says why");
    drop(peers);
    alice_is_untouched(&stack, &mut alice, &alice_id).await;
}

/// A backend's join for a session that has closed (a script that ran on
/// after its client left) or never existed is swept within the gateway
/// lease: `count`, `members` and `info` agree again, and a live session
/// joined at the same moment stays until it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_of_sessions_no_gateway_holds_are_swept_within_the_lease() {
    let (stack, gateways) = e2e::cluster(&["--gateway-lease-ms", "1500"], 1, &[], &["--greet"]);
    let router = stack.router_http_port;
    let mut gone = Client::connect(&gateways[0].url).await;
    let gone_id = gone.recv().await.into_text().unwrap().to_string();
    gone.close().await;
    let mut live = Client::connect(&gateways[0].url).await;
    let live_id = live.recv().await.into_text().unwrap().to_string();
    let info = || http::post(router, "/v1/info", json!({})).1;
    assert!(e2e::eventually(Duration::from_secs(5), || info()["clients"] == 1).await, "the closed one is gone");
    let never = "00000000000000ff";
    let (status, _) = http::post(router, "/v1/join", json!({"channel": "late", "sessions": [gone_id, never, live_id]}));
    assert_eq!(status, 200);
    assert_eq!(http::post(router, "/v1/count", json!({"channel": "late"})).1["count"], 3, "joined as asked");
    let swept = || http::post(router, "/v1/count", json!({"channel": "late"})).1["count"] == 1;
    assert!(e2e::eventually(Duration::from_secs(5), swept).await, "swept within the lease");
    let members = http::post(router, "/v1/members", json!({"channel": "late"})).1;
    assert_eq!(members["sessions"], json!([live_id]), "{members}");
    http::post(router, "/v1/publish", json!({"channel": "late", "data": "to the living"}));
    assert_eq!(live.recv().await, Message::text("to the living"));
    let (_, metrics) = http::request(router, "GET", "/metrics", "").unwrap();
    assert!(metrics.contains("router_unheld_sessions_swept_total 2"), "{metrics}");
    live.close().await;
    let empty = || http::post(router, "/v1/count", json!({"channel": "late"})).1["count"] == 0;
    assert!(e2e::eventually(Duration::from_secs(5), empty).await, "and the live one leaves with its close");
}

/// A client that pings without reading what it is sent: one pong answers
/// every ping still waiting, so such a connection holds a few KB whatever
/// it sends, not a queue of pongs until the write timeout (empty pings
/// cost the most: a queued pong's bookkeeping is twenty times its bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_without_reading_costs_under_16_kb_a_connection() {
    const CLIENTS: usize = 20;
    let (stack, _echo, _) = echo_stack(&[], &[]);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(local(stack.gateway_port)).await.unwrap();
        let url = stack.ws_url("/");
        clients.push(raw_ws::RawWebSocket::connect(stream, &url, "").await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = stack.proc("gateway").rss();
    futures_util::future::join_all(clients.iter_mut().map(|client| async {
        let flood = async {
            for _ in 0..100_000 {
                if client.send_frame(0x9, true, false, &[]).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), flood).await;
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_client = stack.proc("gateway").rss().saturating_sub(before) / CLIENTS as u64;
    assert!(per_client < 16 << 10, "{per_client} bytes a flooding connection");
}

/// An SSE client posts its messages with the send token its stream gave
/// it. Another session's id under its own token's MAC, a resume token, a
/// token of another cluster's secret and a made-up one are refused (403);
/// a real token at a gateway that does not hold the session is refused
/// (421, sticky routing). Nothing of them reaches the victim's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_post_with_a_forged_or_foreign_send_token_is_refused() {
    let log = scratch_file("sse-attack-events.jsonl");
    let log_flag = log.to_str().unwrap();
    let (_stack, gateways) = e2e::cluster(&[], 2, &[], &["--log", log_flag]);
    let port = gateways[0].port;
    let victim = e2e::SseClient::open(port, "/?resume=1", &[]).unwrap();
    let attacker = e2e::SseClient::open(port, "/", &[]).unwrap();
    let victim_id = victim.id().to_owned();
    let attacker_mac = attacker.send_token().split_once('.').unwrap().1.to_owned();
    let other_cluster = protocol::signing::Signer::new(Some("another cluster")).sign(&format!("send:{victim_id}"));
    let ours = protocol::signing::Signer::new(Some("cluster")).sign(&format!("send:{victim_id}"));
    let resume_token = victim.session["resume"].as_str().unwrap().to_owned();
    let forged = [
        format!("{victim_id}.{attacker_mac}"),
        resume_token,
        format!("{victim_id}.{other_cluster}"),
        format!("{victim_id}.{}", "0".repeat(64)),
        victim_id.clone(),
    ];
    for token in &forged {
        let status = e2e::sse::post(port, "/send", token, "text/plain", "as the victim");
        assert_eq!(status, 403, "token {token}");
    }
    assert_eq!(e2e::sse::post(gateways[1].port, "/send", victim.send_token(), "text/plain", "elsewhere"), 421);
    assert_eq!(metric(gateways[0].admin, "gateway_sse_posts_refused_total"), forged.len() as f64);
    // The control: the victim's own token, as the cluster signs it, works.
    assert_eq!(format!("{victim_id}.{ours}"), victim.send_token());
    assert_eq!(victim.send("mine"), 202);
    let events = e2e::backend_events(&log, 3);
    let messages: Vec<&Value> = events.iter().filter(|e| e["event"] == "message").collect();
    assert_eq!(messages.len(), 1, "{events:?}");
    assert_eq!((&messages[0]["body"], &messages[0]["params"]["SESSIONID"]), (&json!("mine"), &json!(victim_id)));
}

/// A client tries to join a channel its backend did not allow: a
/// subscribe the backend refuses, one while the backend is down, the ask
/// in a binary frame or malformed, and headers that would pose as the
/// subscribe event's params. None joins: the router lists no channel for
/// it, and a publish to each never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_refused_subscribe_never_joins() {
    let log = scratch_file("subscribe-attack-events.jsonl");
    let (mut echo, echo_addr) = echo_backend_with(&log, &["--greet"], "echo");
    let args = ["--client-subscribe", "true", "--event-retry-ms", "0", "--backend-connect-timeout-ms", "200"];
    let stack = Stack::start(StackOptions {
        backend: Some(echo_addr),
        gateway_args: args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    });
    let router = stack.router_http_port;
    let headers = [("Channel", "private-a"), ("Event", "5"), ("Fk-Channel", "private-a")];
    let mut client = Client::connect_with_headers(&stack.ws_url("/"), &headers).await;
    let id = client.recv().await.into_text().unwrap().to_string();
    let attempts = [
        Message::text(r#"{"fk":"subscribe","channel":"private-a"}"#),
        Message::binary(br#"{"fk":"subscribe","channel":"private-b"}"#.to_vec()),
        Message::text(r#"{"fk":"subscribe","channel":"private-c""#),
        Message::text(r#"{"fk":"join","channel":"private-d"}"#),
        Message::text(r#"{"fk":"subscribe","channel":""}"#),
    ];
    for attempt in attempts {
        client.send(attempt).await;
        let answer = client.recv().await;
        assert!(!answer.to_text().unwrap_or_default().contains(r#""subscribed""#), "{answer:?}");
    }
    // With the backend down, the answer is no.
    echo.kill();
    client.send(Message::text(r#"{"fk":"subscribe","channel":"private-e"}"#)).await;
    let refused = client.recv_json().await;
    assert_eq!((&refused["type"], &refused["code"]), (&json!("subscribe_refused"), &json!(503)), "{refused}");

    let (_, channels) = http::post(router, "/v1/channels", json!({"session": id}));
    assert_eq!(channels["channels"], json!([]), "joined nothing");
    for channel in ["private-a", "private-b", "private-c", "private-d", "private-e"] {
        let (_, published) = http::post(router, "/v1/publish", json!({"channel": channel, "data": "secret"}));
        assert_eq!(published["sessions"], 0, "{channel}: {published}");
    }
    client.expect_silence(Duration::from_millis(300)).await;
    let connect = &e2e::backend_events(&log, 1)[0]["params"];
    assert!(connect.get("CHANNEL").is_none(), "a header is no subscribe's param: {connect}");
}
