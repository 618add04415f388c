//! Several routers and gateways on one Redis: any router serves any
//! backend, pushes reach each member once, and a router can die and come
//! back while the others carry on.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use e2e::processes::{local, wait_for_port};
use e2e::{free_port, http, Client, Proc, Redis};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

struct Router {
    port: u16,
    http: u16,
    proc: Proc,
}

fn start_router(name: &str, port: u16, http: u16, redis: &str) -> Router {
    start_router_with(name, port, http, redis, &[])
}

fn start_router_with(name: &str, port: u16, http: u16, redis: &str, extra: &[&str]) -> Router {
    let mut args = vec!["--listen".to_owned(), local(port).to_string(), "--http".to_owned(), local(http).to_string()];
    args.extend(["--redis".to_owned(), redis.to_owned()]);
    args.extend(extra.iter().map(|a| a.to_string()));
    let proc = Proc::project("router", &args, name);
    wait_for_port(port, name);
    Router { port, http, proc }
}

fn post(router: &Router, command: &str, body: Value) -> Value {
    let (status, reply) = http::post(router.http, &format!("/v1/{command}"), body);
    assert_eq!(status, 200, "{command}: {reply}");
    reply
}

fn wait_for_gateways(router: &Router, n: usize) {
    e2e::processes::wait_for_gateways_on(router.http, n);
}

async fn text(client: &mut Client) -> String {
    match client.recv().await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Every client's next message is `expected`, then (after a per-client
/// sync push) `sync`: each got it exactly once.
async fn each_gets_once(clients: &mut [(Client, String)], via: &Router, expected: &str) {
    for (client, _) in clients.iter_mut() {
        assert_eq!(text(client).await, expected);
    }
    let ids: Vec<&String> = clients.iter().map(|(_, id)| id).collect();
    post(via, "send", json!({"sessions": ids, "data": "sync"}));
    for (client, _) in clients.iter_mut() {
        assert_eq!(text(client).await, "sync", "no duplicate of {expected:?}");
    }
}

/// Three gateways linked to both routers, before a greeting echo backend,
/// and six clients (two per gateway) that know their session ids.
async fn cluster(a: &Router, b: &Router) -> (Proc, Vec<Proc>, Vec<(Client, String)>) {
    cluster_logging(a, b, None).await
}

/// The same, the echo backend logging its events to `log` if given.
async fn cluster_logging(
    a: &Router,
    b: &Router,
    log: Option<&std::path::Path>,
) -> (Proc, Vec<Proc>, Vec<(Client, String)>) {
    let echo_port = free_port();
    let echo_addr = local(echo_port).to_string();
    let mut echo_args = vec!["--listen".to_owned(), echo_addr.clone(), "--greet".to_owned()];
    if let Some(log) = log {
        echo_args.extend(["--log".to_owned(), log.display().to_string()]);
    }
    let echo = Proc::project("echo-app", &echo_args, "echo");
    wait_for_port(echo_port, "echo-app");
    let mut gateways = Vec::new();
    let mut urls = Vec::new();
    for i in 0..3 {
        let port = free_port();
        let args = [
            "--listen".to_owned(),
            local(port).to_string(),
            "--backend".to_owned(),
            echo_addr.clone(),
            "--router".to_owned(),
            local(a.port).to_string(),
            "--router".to_owned(),
            local(b.port).to_string(),
        ];
        gateways.push(Proc::project("gateway", &args, &format!("gateway-{i}")));
        wait_for_port(port, "gateway");
        urls.push(format!("ws://127.0.0.1:{port}/"));
    }
    wait_for_gateways(a, 3);
    wait_for_gateways(b, 3);

    let mut clients = Vec::new();
    for i in 0..6 {
        let mut client = Client::connect(&urls[i % 3]).await;
        let id = String::from_utf8(client.recv().await.into_data().to_vec()).unwrap();
        clients.push((client, id));
    }
    (echo, gateways, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_three_gateways_one_redis() {
    let redis = Redis::start();
    let (a_port, a_http) = (free_port(), free_port());
    let mut a = start_router("router-a", a_port, a_http, &redis.url());
    let b = start_router("router-b", free_port(), free_port(), &redis.url());
    let (_echo, _gateways, mut clients) = cluster(&a, &b).await;
    let ids: Vec<String> = clients.iter().map(|(_, id)| id.clone()).collect();

    // Join through A, publish through B: one delivery per member, one frame per gateway.
    post(&a, "join", json!({"channel": "room", "sessions": ids}));
    let published = post(&b, "publish", json!({"channel": "room", "data": "via b"}));
    assert_eq!(published, json!({"sessions": 6, "delivered_to_gateways": 3}));
    each_gets_once(&mut clients, &b, "via b").await;

    // A user with a session on each gateway.
    for i in [0, 4, 5] {
        post(&a, "bind", json!({"session": ids[i], "user": "u"}));
    }
    assert_eq!(post(&b, "send_user", json!({"user": "u", "data": "to u"}))["sessions"], 3);
    let mut users: Vec<(Client, String)> = Vec::new();
    for i in [5, 4, 0] {
        users.push(clients.remove(i));
    }
    each_gets_once(&mut users, &b, "to u").await;
    clients.extend(users);

    // Kill A: B carries on. Restart A: it serves again once the gateways relink.
    a.proc.kill();
    assert_eq!(post(&b, "publish", json!({"channel": "room", "data": "a is down"}))["sessions"], 6);
    each_gets_once(&mut clients, &b, "a is down").await;
    a = start_router("router-a-again", a_port, a_http, &redis.url());
    wait_for_gateways(&a, 3);
    assert_eq!(post(&a, "count", json!({"channel": "room"})), json!({"count": 6}), "membership lived in Redis");
    assert_eq!(post(&a, "publish", json!({"channel": "room", "data": "a is back"}))["sessions"], 6);
    each_gets_once(&mut clients, &a, "a is back").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_commands_get_a_clear_unavailable_then_work_again() {
    let mut redis = Redis::start();
    let url = redis.url();
    let router = start_router("router", free_port(), free_port(), &url);
    let join = json!({"channel": "room", "sessions": ["0000000000000001"]});
    assert_eq!(post(&router, "join", join.clone()), json!({"sessions": 1}));

    redis.stop();
    let (status, reply) = http::post(router.http, "/v1/join", join.clone());
    assert_eq!((status, &reply["error"]["code"]), (503, &json!("unavailable")), "{reply}");

    // Our client asks for replies: each failed command answers with the error, at once.
    let client = protocol::RouterClient::new(local(router.port).to_string());
    let started = Instant::now();
    let err = client.members("room").await.unwrap_err();
    assert!(matches!(&err, protocol::client::ClientError::Refused { code, .. } if code == "unavailable"), "{err}");
    let err = client.join("room", vec!["0000000000000002".parse().unwrap()]).await.unwrap_err();
    assert!(matches!(&err, protocol::client::ClientError::Refused { code, .. } if code == "unavailable"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4), "answered in {:?}", started.elapsed());
    // fooking's protocol has no error frame: a MEMBERS that failed closes
    // its connection, so the caller's read ends at once.
    let mut raw = std::net::TcpStream::connect(local(router.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    raw.write_all(&e2e::fooking::frame(102, b"room", b"", false)).unwrap();
    assert_eq!(raw.read(&mut [0; 8]).unwrap_or(0), 0, "closed, not answered");
    assert!(started.elapsed() < Duration::from_secs(4), "closed in {:?}", started.elapsed());

    redis.restart_empty();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, reply) = http::post(router.http, "/v1/count", json!({"channel": "room"}));
        if status == 200 {
            assert_eq!(reply, json!({"count": 0}), "this Redis restarted empty");
            break;
        }
        assert!(Instant::now() < deadline, "the router never reconnected: {reply}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_restarts_empty_is_refilled_from_the_gateways() {
    let mut redis = Redis::start();
    let url = redis.url();
    let a = start_router("router-a", free_port(), free_port(), &url);
    let b = start_router("router-b", free_port(), free_port(), &url);
    let (_echo, _gateways, mut clients) = cluster(&a, &b).await;
    let ids: Vec<String> = clients.iter().map(|(_, id)| id.clone()).collect();
    post(&a, "join", json!({"channel": "room", "sessions": ids}));
    post(&a, "bind", json!({"session": ids[1], "user": "u"}));

    redis.restart_empty();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, reply) = http::post(b.http, "/v1/count", json!({"channel": "room"}));
        if status == 200 && reply["count"] == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "the membership never came back: {status} {reply}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(post(&b, "publish", json!({"channel": "room", "data": "after the flush"}))["sessions"], 6);
    each_gets_once(&mut clients, &b, "after the flush").await;
    assert_eq!(
        post(&b, "send_user", json!({"user": "u", "data": "you again"}))["sessions"],
        1,
        "user bindings came back too"
    );
    assert_eq!(text(&mut clients[1].0).await, "you again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_hard_has_its_sessions_ended_and_their_close_events_sent() {
    let redis = Redis::start();
    let lease = ["--gateway-lease-ms", "1000"];
    let a = start_router_with("router-a", free_port(), free_port(), &redis.url(), &lease);
    let b = start_router_with("router-b", free_port(), free_port(), &redis.url(), &lease);
    let log = e2e::scratch_file("echo-events.jsonl");
    let (_echo, mut gateways, clients) = cluster_logging(&a, &b, Some(&log)).await;
    let ids: Vec<String> = clients.iter().map(|(_, id)| id.clone()).collect();
    post(&a, "join", json!({"channel": "room", "sessions": ids}));
    post(&a, "bind", json!({"session": ids[3], "user": "doomed"}));

    gateways[0].kill(); // SIGKILL: no close events, no goodbye to the routers
    let deadline = Instant::now() + Duration::from_secs(10);
    while post(&b, "count", json!({"channel": "room"}))["count"] != 4 {
        assert!(Instant::now() < deadline, "the dead gateway's sessions never left the channel");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut members: Vec<String> =
        serde_json::from_value(post(&a, "members", json!({"channel": "room"}))["sessions"].clone()).unwrap();
    members.sort();
    let mut alive = vec![ids[1].clone(), ids[2].clone(), ids[4].clone(), ids[5].clone()];
    alive.sort();
    assert_eq!(members, alive, "clients 0 and 3 were on the killed gateway");
    assert_eq!(post(&b, "send_user", json!({"user": "doomed", "data": "x"}))["sessions"], 0);

    let events = e2e::backend_events(&log, 6 + 2);
    let mut closed: Vec<&str> =
        events.iter().filter(|e| e["event"] == "close").map(|e| e["params"]["SESSIONID"].as_str().unwrap()).collect();
    closed.sort();
    let mut expected = vec![ids[0].as_str(), ids[3].as_str()];
    expected.sort();
    assert_eq!(closed, expected, "one close event per session of the dead gateway, and no other");
}

/// A router's first look at a new, empty Redis is no loss (INFO); a Redis
/// that restarts empty under it is (WARN). With `--log-format json`, every
/// line the router writes is one JSON object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_redis_is_logged_as_news_and_a_lost_one_as_a_warning_in_json_lines() {
    let mut redis = Redis::start();
    let router = start_router_with("router", free_port(), free_port(), &redis.url(), &["--log-format", "json"]);
    let lines = |router: &Router| -> Vec<Value> {
        let text = router.proc.log_text();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"))).collect()
    };
    let said = |router: &Router, words: &str| {
        lines(router).into_iter().find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains(words)))
    };
    assert!(e2e::eventually(Duration::from_secs(10), || said(&router, "store is empty").is_some()).await);
    assert_eq!(said(&router, "store is empty").unwrap()["level"], "INFO");
    assert!(said(&router, "lost its data").is_none(), "a new store lost nothing");

    redis.restart_empty();
    assert!(e2e::eventually(Duration::from_secs(10), || said(&router, "lost its data").is_some()).await);
    assert_eq!(said(&router, "lost its data").unwrap()["level"], "WARN");
}

/// A join through one router is on the other's routes once it answers,
/// though the other reads nothing from Redis: fifty times, a member joined
/// through A gets a publish sent through B right after. And with Redis
/// hung (SIGSTOP), a publish to live members answers at once through
/// either router and reaches them: a publish needs no store. (Every
/// publish read the channel's recent joins from Redis, and waited for its
/// 2 s timeout while Redis hung.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_is_seen_by_a_publish_through_another_router_and_publishes_never_wait_on_redis() {
    let redis = Redis::start();
    let a = start_router("router-a", free_port(), free_port(), &redis.url());
    let b = start_router("router-b", free_port(), free_port(), &redis.url());
    let (_echo, _gateways, mut clients) = cluster(&a, &b).await;
    for n in 0..50 {
        let (client, id) = &mut clients[n % 6];
        let channel = format!("fresh-{n}");
        post(&a, "join", json!({"channel": channel, "sessions": [id]}));
        let published = post(&b, "publish", json!({"channel": channel, "data": format!("to {n}")}));
        assert_eq!(published["sessions"], 1, "round {n}: the join through A is on B's routes: {published}");
        assert_eq!(text(client).await, format!("to {n}"));
        // A second member on the same gateway needs no new route, and no barrier.
        let (second, second_id) = &mut clients[(n + 3) % 6];
        post(&a, "join", json!({"channel": channel, "sessions": [second_id]}));
        post(&b, "publish", json!({"channel": channel, "data": format!("again {n}")}));
        assert_eq!(text(second).await, format!("again {n}"), "round {n}: the second member");
        assert_eq!(text(&mut clients[n % 6].0).await, format!("again {n}"));
    }
    let ids: Vec<String> = clients.iter().map(|(_, id)| id.clone()).collect();
    post(&a, "join", json!({"channel": "room", "sessions": ids}));

    redis.pause();
    for (n, router) in [&a, &b, &a, &b].into_iter().enumerate() {
        let started = Instant::now();
        let published = post(router, "publish", json!({"channel": "room", "data": format!("hung {n}")}));
        let took = started.elapsed();
        assert!(took < Duration::from_millis(50), "a publish waited {took:?} on a hung Redis");
        assert_eq!(published["sessions"], 6);
        for (client, _) in clients.iter_mut() {
            assert_eq!(text(client).await, format!("hung {n}"));
        }
    }
    redis.resume();
}
