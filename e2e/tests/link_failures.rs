//! The links between routers and gateways when something goes wrong: a
//! push too large for a link, a gateway that stops reading, a router that
//! goes silent or away, a gateway that dies. Nothing the router accepts is
//! silently lost, and no stuck peer slows the others.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use e2e::processes::{local, wait_for_port};
use e2e::{cluster, eventually, fooking, http, metric, Client, Proc, Redis, Stack};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The gateways' WebSocket URLs.
fn urls(gateways: &[e2e::processes::ClusterGateway]) -> Vec<String> {
    gateways.iter().map(|gateway| gateway.url.clone()).collect()
}

/// A client on each of `urls`, greeted with its session id.
async fn clients(urls: &[String]) -> Vec<(Client, String)> {
    let mut clients = Vec::new();
    for url in urls {
        let mut client = Client::connect(url).await;
        let id = client.recv().await.into_text().unwrap().to_string();
        clients.push((client, id));
    }
    clients
}

fn post(stack: &Stack, command: &str, body: Value) -> (u16, Value) {
    http::post(stack.router_http_port, &format!("/v1/{command}"), body)
}

/// Puts `ids` in "room", once the router has heard of them from their
/// gateway (on a link of its own, so maybe after the clients got greeted).
async fn join_room(stack: &Stack, ids: &[impl AsRef<str>]) {
    let ids = json!(ids.iter().map(AsRef::as_ref).collect::<Vec<&str>>());
    let online = || post(stack, "online", json!({"sessions": ids})).1["sessions"].as_array().map(Vec::len);
    assert!(
        eventually(Duration::from_secs(5), || online() == ids.as_array().map(Vec::len)).await,
        "the router never heard of every session"
    );
    assert_eq!(post(stack, "join", json!({"channel": "room", "sessions": ids})).0, 200);
}

fn count(stack: &Stack, channel: &str) -> u64 {
    let (status, reply) = post(stack, "count", json!({"channel": channel}));
    assert_eq!(status, 200, "{reply}");
    reply["count"].as_u64().unwrap()
}

/// Every client gets `text` next.
async fn all_get(clients: &mut [(Client, String)], text: &str) {
    for (client, _) in clients.iter_mut() {
        assert_eq!(client.recv().await, Message::text(text));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_over_the_frame_limit_is_refused_where_it_enters_and_the_next_arrives_everywhere() {
    let (stack, gateways) = cluster(&[], 2, &[], &["--greet"]);
    let mut clients = clients(&urls(&gateways)).await;
    let large = "x".repeat(1536 << 10);

    let (status, reply) = post(&stack, "broadcast", json!({"data": large}));
    assert_eq!(status, 413, "{reply}");
    assert_eq!(reply["error"]["code"], "too_large");
    assert!(reply["error"]["message"].as_str().unwrap().contains("1048576"), "names the limit: {reply}");

    // The binary port: fooking's SEND_ALL, one connection, closed with a logged reason.
    let mut raw = std::net::TcpStream::connect(local(stack.router_port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = raw.write_all(&fooking::frame(fooking::SEND_ALL, b"", large.as_bytes(), false));
    assert_eq!(raw.read(&mut [0; 8]).unwrap_or(0), 0, "the router closed the connection");
    assert!(stack.proc("router").log_text().contains("exceeds the limit"), "and said why");

    let (status, _) = post(&stack, "broadcast", json!({"data": "after"}));
    assert_eq!(status, 200);
    all_get(&mut clients, "after").await;
    assert!(!stack.proc("gateway-0").log_text().contains("router link lost"), "no link dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_takes_no_push_larger_than_its_gateways_take() {
    let (stack, gateways) = cluster(&["--max-frame", "4194304"], 2, &[], &["--greet"]);
    let mut clients = clients(&urls(&gateways)).await;
    let large = "x".repeat(1536 << 10);
    let (status, reply) = post(&stack, "broadcast", json!({"data": large}));
    assert_eq!(status, 413, "the gateways said they take 1 MiB: {reply}");

    // A backend that asks for replies hears why, and keeps its connection.
    let mut raw = std::net::TcpStream::connect(local(stack.router_port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(&fooking::frame(1, b"backend+replies", b"", false)).unwrap();
    raw.write_all(&fooking::frame(fooking::SEND_ALL, b"", large.as_bytes(), false)).unwrap();
    raw.write_all(&fooking::frame(fooking::SEND_ALL, b"", b"after", false)).unwrap();
    for expected in [116u16, 115] {
        let mut header = [0u8; 8];
        raw.read_exact(&mut header).unwrap();
        raw.read_exact(&mut vec![0; (u32::from_be_bytes(header[4..].try_into().unwrap()) & 0x7fff_ffff) as usize])
            .unwrap();
        assert_eq!(u16::from_be_bytes([header[0], header[1]]), expected, "ERROR, then OK on the same connection");
    }
    all_get(&mut clients, "after").await;

    let (status, _) = post(&stack, "broadcast", json!({"data": "after"}));
    assert_eq!(status, 200);
    all_get(&mut clients, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_frame_limit_raised_everywhere_a_large_push_is_delivered() {
    let limit = ["--max-frame", "4194304"];
    let (stack, gateways) = cluster(&limit, 2, &limit, &["--greet"]);
    let mut clients = clients(&urls(&gateways)).await;
    let large = "y".repeat(1536 << 10);
    let (status, reply) = post(&stack, "broadcast", json!({"data": large}));
    assert_eq!((status, reply["sessions"].as_u64()), (200, Some(2)), "{reply}");
    all_get(&mut clients, &large).await;
}

/// One of two gateways stops (SIGSTOP) while 3,000 publishes of 4 KB go
/// to a channel with members on both: each still reaches the live
/// gateway's members within 100 ms, and the stopped one is cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateway_slows_no_push_to_the_others() {
    let (stack, gateways) = cluster(&[], 2, &["--max-message-rate", "0"], &["--greet"]);
    let urls = urls(&gateways);
    let live: Vec<String> = std::iter::repeat_n(urls[0].clone(), 3).collect();
    let stopped: Vec<String> = std::iter::repeat_n(urls[1].clone(), 3).collect();
    let live = clients(&live).await;
    let stopped_clients = clients(&stopped).await;
    let ids: Vec<&String> = live.iter().chain(&stopped_clients).map(|(_, id)| id).collect();
    join_room(&stack, &ids).await;
    stack.proc("gateway-1").signal("STOP");

    const PUBLISHES: usize = 3000;
    // Each live member reads as it goes, noting when each message arrived.
    let readers: Vec<_> = live
        .into_iter()
        .map(|(mut client, _)| {
            tokio::spawn(async move {
                let mut arrived = Vec::with_capacity(PUBLISHES);
                for i in 0..PUBLISHES {
                    let text = client.recv().await.into_text().unwrap();
                    assert!(text.starts_with(&format!("{i}:")), "every publish, in order");
                    arrived.push(Instant::now());
                }
                arrived
            })
        })
        .collect();
    let http_port = stack.router_http_port;
    let sent = tokio::task::spawn_blocking(move || {
        let padding = "p".repeat(4096);
        (0..PUBLISHES)
            .map(|i| {
                let at = Instant::now();
                let body = json!({"channel": "room", "data": format!("{i}:{padding}")});
                let (status, reply) = http::post(http_port, "/v1/publish", body);
                assert_eq!(status, 200, "{reply}");
                assert!(at.elapsed() < Duration::from_secs(1), "publish {i} waited {:?}", at.elapsed());
                at
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for reader in readers {
        let arrived = reader.await.unwrap();
        let slowest = sent.iter().zip(&arrived).map(|(s, a)| a.duration_since(*s)).max().unwrap();
        eprintln!("slowest of {PUBLISHES} publishes to a live member: {slowest:?}");
        assert!(slowest <= Duration::from_millis(100), "the slowest publish took {slowest:?} to reach a live member");
    }
    let cut_off = |reason: &str| metric(http_port, &format!("router_gateways_cut_off_total{{reason=\"{reason}\"}}"));
    assert!(
        eventually(Duration::from_secs(10), || cut_off("stalled") + cut_off("silent") + cut_off("queue_full") >= 1.0)
            .await,
        "the stopped gateway was cut off"
    );

    // Woken, it links again and its members get pushes again.
    stack.proc("gateway-1").signal("CONT");
    stack.wait_for_gateways(2);
    let mut stopped_clients = stopped_clients;
    let ids: Vec<&String> = stopped_clients.iter().map(|(_, id)| id).collect();
    let (_, reply) = post(&stack, "send", json!({"sessions": ids, "data": "back"}));
    assert_eq!(reply["sessions"], 3, "its sessions are routed to it again: {reply}");
    for (client, _) in stopped_clients.iter_mut() {
        while client.recv().await != Message::text("back") {}
    }
}

/// A router stopped (SIGSTOP) is found dead by the gateway within three
/// heartbeats; sessions that end meanwhile leave their channels once the
/// link is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_router_is_found_dead_and_sessions_that_ended_meanwhile_leave_their_channels() {
    let beat = ["--link-heartbeat-ms", "300"];
    let (stack, gateways) = cluster(&beat, 1, &beat, &["--greet"]);
    let admin = gateways[0].admin;
    let mut members = clients(&vec![gateways[0].url.clone(); 4]).await;
    let ids: Vec<&String> = members.iter().map(|(_, id)| id).collect();
    join_room(&stack, &ids).await;
    assert_eq!(count(&stack, "room"), 4);

    stack.proc("router").signal("STOP");
    let stopped = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || metric(admin, "gateway_router_links_silent_total") >= 1.0).await,
        "the gateway never found the router dead"
    );
    assert!(stopped.elapsed() < Duration::from_secs(3), "found dead in {:?}", stopped.elapsed());
    for (client, _) in members.drain(..3) {
        client.close().await;
    }
    assert!(eventually(Duration::from_secs(5), || metric(admin, "gateway_router_unreported_closes") == 3.0).await);
    // A stopped router's kernel still takes new links and their reports:
    // the ends stay unreported until the router is heard on a link.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        assert_eq!(metric(admin, "gateway_router_unreported_closes"), 3.0, "ends lost to a report nobody read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    stack.proc("router").signal("CONT");
    assert!(
        eventually(Duration::from_secs(10), || count(&stack, "room") == 1).await,
        "the three that ended left the channel: {}",
        count(&stack, "room")
    );
    // Reported once the router is heard on the link that carried them.
    assert!(eventually(Duration::from_secs(5), || metric(admin, "gateway_router_unreported_closes") == 0.0).await);
}

/// Sessions that end while the router is down, then restarted on the same
/// Redis, leave their channels when the gateway links again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_ended_while_the_router_was_down_leave_their_channels() {
    let redis = Redis::start();
    let url = redis.url();
    let (mut stack, gateways) = cluster(&["--redis", &url], 1, &[], &["--greet"]);
    let mut members = clients(&vec![gateways[0].url.clone(); 4]).await;
    let ids: Vec<&String> = members.iter().map(|(_, id)| id).collect();
    join_room(&stack, &ids).await;

    stack.proc_mut("router").kill();
    for (client, _) in members.drain(..) {
        client.close().await;
    }
    let (port, http) = (local(stack.router_port).to_string(), local(stack.router_http_port).to_string());
    let again = Proc::project("router", &["--listen", &port, "--http", &http, "--redis", &url], "router-again");
    wait_for_port(stack.router_http_port, "router");
    stack.procs.push(again);
    stack.wait_for_gateways(1);
    assert!(
        eventually(Duration::from_secs(10), || count(&stack, "room") == 0).await,
        "members left after the link came back: {}",
        count(&stack, "room")
    );
    let (_, members) = post(&stack, "members", json!({"channel": "room"}));
    assert_eq!(members["sessions"], json!([]));
}

/// With the in-memory store, a gateway killed outright: within its lease
/// its sessions leave their channels and the live gateway sends their
/// close events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_gateway_is_reaped_with_the_in_memory_store() {
    let log = e2e::scratch_file("events.jsonl");
    let log_path = log.to_str().unwrap();
    let (mut stack, gateways) = cluster(&["--gateway-lease-ms", "1000"], 2, &[], &["--greet", "--log", log_path]);
    let members = clients(&vec![gateways[1].url.clone(); 3]).await;
    let ids: Vec<String> = members.iter().map(|(_, id)| id.clone()).collect();
    join_room(&stack, &ids).await;

    stack.proc_mut("gateway-1").kill();
    assert!(
        eventually(Duration::from_secs(10), || count(&stack, "room") == 0).await,
        "the dead gateway's sessions were never reaped"
    );
    let events = e2e::backend_events(&log, 6);
    let mut closed: Vec<&str> =
        events.iter().filter(|e| e["event"] == "close").map(|e| e["params"]["SESSIONID"].as_str().unwrap()).collect();
    closed.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(closed, expected, "one close event per session of the dead gateway");
}
