//! The Pusher protocol, driven by clients no one here wrote: pusher-js
//! and the `pusher` server SDK from npm (e2e/browser/pusher_node.mjs), the
//! `pusher` SDK from PyPI (e2e/python/pusher_sdk.py), against a real
//! gateway and router with one Pusher app, the FastCGI backend
//! hearing the Pusher clients' events, and the app's webhooks checked by
//! the SDK's own check.

use e2e::browser::run_script;
use e2e::{backend_events, echo_backend_with, scratch_file, Stack, StackOptions};

const APP: &str = "1:app-key:app-secret:client-events";

/// The stack with one Pusher app and the echo backend; the router posts
/// the app's webhooks to `webhook_port`.
fn pusher_stack(app: &str, webhook_port: u16) -> (Stack, e2e::Proc, std::path::PathBuf) {
    let log = scratch_file("pusher-events.jsonl");
    let (echo, echo_addr) = echo_backend_with(&log, &[], "echo");
    let flags = vec!["--pusher-app".to_owned(), app.to_owned()];
    let mut router_args = flags.clone();
    router_args.extend(["--pusher-webhook".to_owned(), format!("1=http://127.0.0.1:{webhook_port}/hooks")]);
    let stack =
        Stack::start(StackOptions { backend: Some(echo_addr), gateway_args: flags, router_args, ..Default::default() });
    (stack, echo, log)
}

fn app_env(stack: &Stack) -> Vec<(&'static str, String)> {
    vec![
        ("GATEWAY_PORT", stack.gateway_port.to_string()),
        ("ROUTER_HTTP_PORT", stack.router_http_port.to_string()),
        ("APP_ID", "1".into()),
        ("APP_KEY", "app-key".into()),
        ("APP_SECRET", "app-secret".into()),
    ]
}

#[test]
fn pusher_js_and_the_node_sdk_work_against_fk_unchanged() {
    let webhook_port = e2e::free_port();
    let (stack, _echo, log) = pusher_stack(APP, webhook_port);
    let mut env = app_env(&stack);
    env.push(("WEBHOOK_PORT", webhook_port.to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let report = run_script("pusher_node.mjs", &[], &env);
    assert!(report.contains("all checks passed"), "{report}");

    // The backend heard each pusher-js client connect and close, with its
    // app and socket id.
    let events = backend_events(&log, 4);
    let connects: Vec<_> = events.iter().filter(|e| e["params"]["EVENT"] == "1").collect();
    assert!(connects.len() >= 3, "{events:?}");
    for connect in connects {
        assert_eq!(connect["params"]["PUSHER_APP_ID"], "1");
        let socket = connect["params"]["PUSHER_SOCKET_ID"].as_str().unwrap();
        assert!(protocol::pusher::session_of_socket(socket).is_some(), "{socket}");
    }
}

/// Runs e2e/python/pusher_sdk.py (the PyPI SDK, in the venv ./test.sh
/// makes) with `args`; its stdout as JSON.
fn python_sdk(stack: &Stack, webhook_port: u16, args: &[&str]) -> serde_json::Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    let python = dir.join(".venv/bin/python");
    assert!(python.exists(), "the PyPI SDK's venv is missing: run ./test.sh, which makes it");
    let output = std::process::Command::new(python)
        .arg(dir.join("pusher_sdk.py"))
        .args(args)
        .envs(app_env(stack))
        .env("WEBHOOK_PORT", webhook_port.to_string())
        .output()
        .expect("python");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "pusher_sdk.py {args:?} failed:\n{stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

/// A Pusher event from a raw client, skipping pings and the like.
async fn pusher_event(client: &mut e2e::Client, event: &str) -> serde_json::Value {
    loop {
        let message = client.recv_json().await;
        if message["event"] == event {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_triggers_reads_signs_and_checks_webhooks_as_fk_does() {
    let webhook_port = e2e::free_port();
    let (stack, _echo, _log) = pusher_stack(APP, webhook_port);
    let mut ann = e2e::Client::connect(&stack.ws_url("/app/app-key?protocol=7&client=raw")).await;
    let established = pusher_event(&mut ann, "pusher:connection_established").await;
    let data: serde_json::Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    let socket = data["socket_id"].as_str().unwrap().to_owned();

    // The SDK's authenticate() signs a presence subscribe that the gateway takes.
    let auth = python_sdk(&stack, webhook_port, &["auth", &socket, "presence-room", "ann"]);
    let subscribe = serde_json::json!({"event": "pusher:subscribe", "data": {
        "channel": "presence-room", "auth": auth["auth"], "channel_data": auth["channel_data"]}});
    ann.send_json(subscribe).await;
    let joined = pusher_event(&mut ann, "pusher_internal:subscription_succeeded").await;
    assert!(joined["data"].as_str().unwrap().contains(r#""Ann""#), "{joined}");
    ann.send_json(serde_json::json!({"event": "pusher:subscribe", "data": {"channel": "news"}})).await;
    pusher_event(&mut ann, "pusher_internal:subscription_succeeded").await;

    let read = python_sdk(&stack, webhook_port, &["api"]);
    let mut heard = Vec::new();
    for _ in 0..5 {
        let message = ann.recv_json().await;
        let data: serde_json::Value = serde_json::from_str(message["data"].as_str().unwrap()).unwrap();
        heard.push(format!(
            "{} {} {}",
            message["channel"].as_str().unwrap(),
            message["event"].as_str().unwrap(),
            data["n"]
        ));
    }
    let expected =
        ["news py-one 1", "news py-many 2", "presence-room py-many 2", "news py-batch 3", "presence-room py-batch 4"];
    assert_eq!(heard, expected, "each event, in order");
    assert_eq!(read["channels"]["channels"]["news"]["subscription_count"], 1, "{read}");
    assert_eq!(read["presence"]["channels"]["presence-room"]["user_count"], 1, "{read}");
    assert_eq!(read["news"]["occupied"], true, "{read}");
    assert_eq!(read["users"]["users"], serde_json::json!([{"id": "ann"}]), "{read}");
    assert_eq!(read["terminated"], serde_json::json!({}), "{read}");
    let webhooks = read["webhooks"].as_array().unwrap_or_else(|| panic!("no webhook the SDK took: {read}"));
    assert!(webhooks.contains(&serde_json::json!("member_added presence-room")), "{read}");
    assert_eq!(read["tampered_refused"], true, "the SDK refuses a tampered webhook: {read}");
}

/// Laravel Echo and pusher-js in Chromium on examples/pusher/, with the
/// example's PHP backend under php-fpm: channel auth through the
/// gateway's --http-route (Laravel's /broadcasting/auth), and the
/// FastCGI events of the Pusher clients, with each whisper put to PHP
/// first (`client-events=backend`), which refuses one.
#[test]
fn laravel_echo_in_chromium_with_a_php_backend_under_php_fpm() {
    let (_fpm, fpm_addr, dir) = e2e::processes::php_fpm_on_a_port("php-pusher", 4);
    let events = dir.join("events.jsonl");
    let _ = std::fs::remove_file(&events);
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pusher").canonicalize().unwrap();
    let modules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules");
    let app = "1:app-key:app-secret:client-events=backend";
    let gateway_args = vec![
        "--pusher-app".to_owned(),
        app.to_owned(),
        "--http-route".to_owned(),
        "/broadcasting/".to_owned(),
        "--param".to_owned(),
        format!("SCRIPT_FILENAME={}", example.join("app.php").display()),
        "--param".to_owned(),
        "PUSHER_APP_KEY=app-key".to_owned(),
        "--param".to_owned(),
        "PUSHER_APP_SECRET=app-secret".to_owned(),
        "--param".to_owned(),
        format!("EVENT_LOG={}", events.display()),
        "--page".to_owned(),
        format!("/pusher={}", example.join("index.html").display()),
        "--page".to_owned(),
        format!("/pusher.js={}", modules.join("pusher-js/dist/web/pusher.min.js").display()),
        "--page".to_owned(),
        format!("/echo.js={}", modules.join("laravel-echo/dist/echo.iife.js").display()),
    ];
    let stack = Stack::start(StackOptions {
        backend: Some(fpm_addr),
        gateway_args,
        router_args: vec!["--pusher-app".into(), app.into()],
        ..Default::default()
    });
    let env = app_env(&stack);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = stack.ws_url("").replace("ws://", "http://");
    let screenshot = e2e::processes::bin_dir().join("../e2e-logs/pusher-echo.png");
    let report = run_script("pusher_echo.mjs", &[&page, screenshot.to_str().unwrap()], &env);
    assert!(report.contains("all checks passed"), "{report}");

    // PHP heard each client connect with its socket id, and each whisper
    // (EVENT=8) with its channel, the refused one too.
    let logged = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<serde_json::Value> = logged.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let connects = lines.iter().filter(|l| l["event"] == "1").count();
    assert!(connects >= 3, "{logged}");
    assert!(lines
        .iter()
        .filter(|l| l["event"] == "1")
        .all(|l| l["app"] == "1" && l["socket"].as_str().unwrap().contains('.')));
    let whispers: Vec<_> = lines.iter().filter(|l| l["event"] == "8").collect();
    assert_eq!(whispers.len(), 2, "{logged}");
    assert!(whispers.iter().all(|w| w["channel"] == "presence-auction.1"), "{logged}");
    assert!(whispers[1]["body"].as_str().unwrap().contains("forbidden"), "{logged}");
}

/// `subscription_succeeded` is a promise: once a client hears it, an event
/// triggered through any router reaches it. Two routers on one Redis, one
/// gateway: 50 clients each join a channel no one here is in (a new route)
/// and at once the other router is asked to trigger on it.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_triggered_through_another_router_right_after_subscribing_arrives() {
    let redis = e2e::Redis::start();
    let redis_url = redis.url();
    let router_args = ["--pusher-app", APP, "--redis", &redis_url];
    let (_stack, http_ports, gateways) =
        e2e::processes::routed_cluster(2, &router_args, 1, &["--pusher-app", APP], &[]);
    let app: protocol::pusher::App = APP.parse().unwrap();
    let url = format!("{}app/app-key?protocol=7", gateways[0].url);
    for k in 0..50 {
        let mut client = e2e::Client::connect(&url).await;
        pusher_event(&mut client, "pusher:connection_established").await;
        let channel = format!("fresh-{k}");
        client.send_json(serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel}})).await;
        pusher_event(&mut client, "pusher_internal:subscription_succeeded").await;
        let body = serde_json::json!({"name": "now", "channel": channel, "data": k.to_string()}).to_string();
        let path = "/apps/1/events";
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let query = app.signed_query("POST", path, body.as_bytes(), now);
        let (status, reply) = e2e::http::request(http_ports[1], "POST", &format!("{path}?{query}"), &body).unwrap();
        assert_eq!(status, 200, "{reply}");
        let event = tokio::time::timeout(std::time::Duration::from_secs(2), pusher_event(&mut client, "now")).await;
        assert!(event.is_ok(), "client {k}: the event through the other router never came");
        client.close().await;
    }
}

/// An app's `max-connections`: past it a client gets Pusher's 4004 (and
/// pusher-js backs off); a connection that ends gives its seat back.
#[tokio::test(flavor = "multi_thread")]
async fn an_app_over_its_connection_quota_is_refused_with_4004() {
    let (stack, _echo, _log) = pusher_stack("1:app-key:app-secret:max-connections=2", e2e::free_port());
    let url = stack.ws_url("/app/app-key?protocol=7");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = e2e::Client::connect(&url).await;
        pusher_event(&mut client, "pusher:connection_established").await;
        held.push(client);
    }
    let mut third = e2e::Client::connect(&url).await;
    let refused = pusher_event(&mut third, "pusher:error").await;
    assert_eq!(refused["data"]["code"], 4004, "{refused}");
    let close = third.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4004);
    held.pop().unwrap().close().await;
    let mut again = None;
    for _ in 0..50 {
        let mut client = e2e::Client::connect(&url).await;
        if client.recv_json().await["event"] == "pusher:connection_established" {
            again = Some(client);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a seat given back takes a new connection");
}

/// A presence member comes back as it joined after a router restart in
/// memory: the gateway reports it as the member its client signed (not
/// as a bare session), so a later joiner sees ann with her info.
#[tokio::test(flavor = "multi_thread")]
async fn a_presence_member_is_reported_as_it_joined_after_a_router_restart() {
    let (mut stack, _echo, _log) = pusher_stack(APP, e2e::free_port());
    let url = stack.ws_url("/app/app-key?protocol=7");
    let app: protocol::pusher::App = APP.parse().unwrap();
    let join = |socket: &str, user: &str| {
        let data = serde_json::json!({"user_id": user, "user_info": {"name": user.to_uppercase()}}).to_string();
        let input = protocol::pusher::channel_signature_input(socket, "presence-room", Some(&data));
        let auth = format!("app-key:{}", app.sign(&input));
        serde_json::json!({"event": "pusher:subscribe", "data": {"channel": "presence-room", "auth": auth, "channel_data": data}})
    };
    let socket_of = |established: serde_json::Value| {
        let data: serde_json::Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
        data["socket_id"].as_str().unwrap().to_owned()
    };
    let mut ann = e2e::Client::connect(&url).await;
    let socket = socket_of(pusher_event(&mut ann, "pusher:connection_established").await);
    ann.send_json(join(&socket, "ann")).await;
    pusher_event(&mut ann, "pusher_internal:subscription_succeeded").await;

    stack.proc_mut("router").kill();
    let (port, http) = (e2e::processes::local(stack.router_port), e2e::processes::local(stack.router_http_port));
    let args = ["--listen", &port.to_string(), "--http", &http.to_string(), "--pusher-app", APP];
    stack.procs.push(e2e::Proc::project("router", &args, "router-again"));
    e2e::processes::wait_for_port(stack.router_http_port, "router");
    stack.wait_for_gateways(1);
    stack.wait_for_clients(1);

    let mut bob = e2e::Client::connect(&url).await;
    let socket = socket_of(pusher_event(&mut bob, "pusher:connection_established").await);
    bob.send_json(join(&socket, "bob")).await;
    let members = pusher_event(&mut bob, "pusher_internal:subscription_succeeded").await;
    let data: serde_json::Value = serde_json::from_str(members["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["presence"]["hash"]["ann"], serde_json::json!({"name": "ANN"}), "{data}");
    assert_eq!(data["presence"]["count"], 2, "{data}");
}
