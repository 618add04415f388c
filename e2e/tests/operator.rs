//! The router's operator page, its JSON side (`/admin/api/...`), against
//! real processes: summarised however large the cluster (a gateway that
//! reports 100,000 sessions in 10,000 channels), and a drain asked from it.
//! The page in Chromium is in `browser.rs`, its token in `attacks.rs`.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::processes::{local, wait_for_port};
use e2e::{fooking, free_port, http, Client, Proc, Redis};
use serde_json::{json, Value};

const TOKEN: &str = "operator-secret";

fn admin(port: u16, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http::request_with_token(port, method, path, body, Some(TOKEN)).unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A peer that links as a gateway (the router has no gateway token) and
/// reports `sessions` sessions, spread over `channels` channels.
fn big_gateway(router_port: u16, sessions: usize, channels: usize) -> TcpStream {
    let mut stream = TcpStream::connect(local(router_port)).unwrap();
    let auth = [&77i32.to_be_bytes()[..], &7i32.to_be_bytes()].concat();
    stream.write_all(&fooking::frame(1, b"", &auth, false)).unwrap();
    let ids: Vec<u8> = (0..sessions).flat_map(|i| format!("{:016x}", i + 1).into_bytes()).collect();
    for chunk in ids.chunks(4095 * 16) {
        stream.write_all(&fooking::frame(2, chunk, b"", false)).unwrap();
    }
    for c in 0..channels {
        let members = (sessions / channels) as u32 + (c % 7) as u32;
        let data = [&1u64.to_be_bytes()[..], &0u64.to_be_bytes(), &members.to_be_bytes(), format!("ch-{c}").as_bytes()]
            .concat();
        stream.write_all(&fooking::frame(10, b"", &data, false)).unwrap();
    }
    stream
}

#[test]
fn the_overview_stays_small_and_fast_with_100_000_sessions_in_10_000_channels() {
    let (stack, _gateways) = e2e::cluster(&["--admin-token", TOKEN], 1, &[], &[]);
    let port = stack.router_http_port;
    let _big = big_gateway(stack.router_port, 100_000, 10_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    let overview = loop {
        let (_, overview) = admin(port, "GET", "/admin/api/overview", "");
        if overview["totals"]["sessions"] == 100_000 && overview["totals"]["channels"] == 10_000 {
            break overview;
        }
        assert!(Instant::now() < deadline, "never saw the big gateway: {}", overview["totals"]);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(overview["totals"]["gateways"], 2);
    let top = overview["channels"].as_array().unwrap();
    assert_eq!(top.len(), 10, "the largest ten, not all: {top:?}");
    assert_eq!(top[0]["members"], 16, "10 members each, 6 more for every seventh channel: {top:?}");

    let started = Instant::now();
    let (status, text) = http::request_with_token(port, "GET", "/admin/api/overview", "", Some(TOKEN)).unwrap();
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert!(text.len() < 64 << 10, "a summary, not a dump: {} bytes", text.len());
    assert!(took < Duration::from_millis(500), "answered in {took:?}");

    let (_, found) = admin(port, "GET", "/admin/api/channels?q=ch-99&limit=5", "");
    assert_eq!(found["count"], 111, "ch-99, ch-990..999, ch-9900..9999: {found}");
    let listed: Vec<&str> =
        found["channels"].as_array().unwrap().iter().map(|c| c["channel"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 5, "{found}");
    let (_, capped) = admin(port, "GET", "/admin/api/channels?limit=100000", "");
    assert_eq!(capped["channels"].as_array().unwrap().len(), 100, "at most 100 a call");

    let (_, one) = admin(port, "GET", "/admin/api/sessions?id=0000000000000001", "");
    assert_eq!(one["sessions"][0]["gateway"], "77:7", "{one}");
    let (status, _) = admin(port, "GET", "/admin/api/sessions?id=nope", "");
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_drain_asked_on_the_page_closes_the_gateways_clients_and_ends_it() {
    let (mut stack, gateways) = e2e::cluster(&["--admin-token", TOKEN], 2, &[], &[]);
    let mut client = Client::connect(&gateways[0].url).await;
    let mut other = Client::connect(&gateways[1].url).await;
    stack.wait_for_clients(2);
    let (_, overview) = admin(stack.router_http_port, "GET", "/admin/api/overview", "");
    let gateway = overview["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gateway"].as_str().unwrap().starts_with(&format!("{}:", stack.proc("gateway-0").pid())))
        .map(|g| g["gateway"].as_str().unwrap().to_owned())
        .expect("gateway-0 is listed by its server id, its pid");
    let (status, reply) =
        admin(stack.router_http_port, "POST", "/admin/api/drain", &json!({"gateway": gateway}).to_string());
    assert_eq!((status, &reply), (200, &json!({"draining": gateway})));
    let close = client.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1001, "closed as on SIGTERM");
    assert!(stack.proc_mut("gateway-0").wait_exit(Duration::from_secs(10)), "the gateway ended once drained");
    other.send(tokio_tungstenite::tungstenite::Message::text("still here")).await;
    assert_eq!(other.recv().await.into_text().unwrap().as_str(), "still here", "the other gateway goes on");
    let (status, _) = admin(stack.router_http_port, "POST", "/admin/api/drain", &json!({"gateway": "1:1"}).to_string());
    assert_eq!(status, 404, "no such gateway");
}

/// Routers that share a Redis see each other: each lists the others with
/// when it last heard of them, and one that stops is a problem on the
/// others' pages within seconds.
#[test]
fn routers_on_one_redis_list_each_other_and_a_stopped_one_stands_out() {
    let redis = Redis::start();
    let mut routers = Vec::new();
    for name in ["router-a", "router-b"] {
        let (port, http_port) = (free_port(), free_port());
        let (listen, http_addr) = (local(port).to_string(), local(http_port).to_string());
        let args = ["--listen", &listen, "--http", &http_addr, "--redis", &redis.url(), "--admin-token", TOKEN];
        routers.push((Proc::project("router", &args, name), port, http_port));
        wait_for_port(http_port, name);
    }
    let listed = |http_port| {
        let (_, overview) = admin(http_port, "GET", "/admin/api/overview", "");
        overview
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while listed(routers[0].2)["routers"].as_array().map(Vec::len) != Some(2) {
        assert!(Instant::now() < deadline, "router-a never listed both: {}", listed(routers[0].2)["routers"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let b_name = format!(":{}", routers[1].1);
    let overview = listed(routers[0].2);
    let b = overview["routers"].as_array().unwrap().iter().find(|r| r["name"].as_str().unwrap().ends_with(&b_name));
    assert_eq!(b.expect("router-b listed")["http"], local(routers[1].2).to_string());
    assert_eq!(overview["problems"], json!([]));

    routers[1].0.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let problems = listed(routers[0].2)["problems"].to_string();
        if problems.contains("silent") && problems.contains(&b_name) {
            break;
        }
        assert!(Instant::now() < deadline, "router-b never shown silent: {problems}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A lookup asks the gateway that holds the session (DESCRIBE): how long
/// it has been there, the meta its backend set, and where its client is.
#[tokio::test]
async fn a_lookup_gives_a_sessions_meta_age_and_client_from_its_gateway() {
    let (stack, gateways) = e2e::cluster(&["--admin-token", TOKEN], 1, &[], &[]);
    let mut client = Client::connect(&format!("{}?resume=1", gateways[0].url)).await;
    let id = client.recv_json().await["id"].as_str().unwrap().to_owned();
    client.send(tokio_tungstenite::tungstenite::Message::text("remember ann")).await;
    assert_eq!(client.recv().await.into_text().unwrap().as_str(), "remember ann");
    stack.wait_for_clients(1);
    let lookup = format!("/admin/api/sessions?id={id}");
    let (_, found) = admin(stack.router_http_port, "GET", &lookup, "");
    let session = &found["sessions"][0];
    assert_eq!(session["meta"], json!({"META_USER": "ann"}), "{found}");
    assert_eq!(session["remote"], format!("127.0.0.1:{}", client.local_port()));
    assert!(session["age_s"].as_u64().unwrap() < 10, "{found}");

    client.kill();
    let away = || admin(stack.router_http_port, "GET", &lookup, "").1["sessions"][0]["remote"].is_null();
    assert!(e2e::eventually(Duration::from_secs(5), away).await, "a parked session has no client");
    let (_, unknown) = admin(stack.router_http_port, "GET", "/admin/api/sessions?id=00000000000000ff", "");
    let unknown = &unknown["sessions"][0];
    assert!(unknown["gateway"].is_null() && unknown.get("age_s").is_none(), "{unknown}");
}
