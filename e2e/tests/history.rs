//! Channel history (the router's `--history`): a member that joins while
//! messages flow gets the last ones kept, then the live ones, with none
//! lost or repeated at the seam (loadgen checks every number); a backend
//! reads them with `/v1/history`; they stay within their count and bytes,
//! and outlive a router restart on Redis; a client that lost its session
//! recovers what it missed by offset. Real processes throughout.

use std::process::Command;
use std::time::Duration;

use e2e::processes::{bin_dir, local, redis_cli, routed_cluster, wait_for_port};
use e2e::{http, metric, Client, Proc, Redis, RedisCluster};
use serde_json::{json, Value};

fn loadgen(args: &[&str]) -> (bool, Value) {
    let output = Command::new(bin_dir().join("loadgen")).arg("--json").args(args).output().expect("run loadgen");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no JSON report: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.success(), report)
}

/// Joiners with history during a stream of publishes, through two
/// gateways, on `routers` routers run with `router_args` (one store): the
/// publishes go through the first router, the joins through the last.
/// `joiners` join over `run` (loadgen's late-join flags), which publishes
/// at least `messages`: each joiner's run checked by loadgen.
fn late_joiners_miss_nothing(routers: usize, router_args: &[&str], run: &[&str], joiners: u64, messages: u64) {
    let args: Vec<&str> = ["--history", "history-=50"].into_iter().chain(router_args.iter().copied()).collect();
    let (_stack, http, gateways) = routed_cluster(routers, &args, 2, &[], &[]);
    let (publishes, joins) = (local(http[0]).to_string(), local(http[routers - 1]).to_string());
    let joiners_flag = joiners.to_string();
    let late_join = ["late-join", "--router", &publishes, "--join-router", &joins, "--kept", "50", "-j", &joiners_flag];
    let urls = ["--url", &gateways[0].url, "--url", &gateways[1].url];
    let (ok, report) = loadgen(&[&urls[..], &late_join, run].concat());
    assert!(ok && report["ok"] == true, "{report:#}");
    let figures = &report["figures"];
    assert!(figures["messages"].as_u64().unwrap() >= messages, "{report:#}");
    assert!(figures["received"].as_u64().unwrap() > joiners * 50, "{report:#}");
    let sent = metric(http[routers - 1], "router_history_sent_total");
    assert_eq!(sent, (joiners * 50) as f64, "each joiner got the 50 kept ones");
}

#[test]
fn a_member_joining_while_messages_flow_gets_the_kept_ones_then_live_with_none_lost_or_repeated() {
    late_joiners_miss_nothing(1, &[], &["-d", "4"], 30, 501);
}

#[test]
fn the_same_seam_holds_on_redis() {
    let redis = Redis::start();
    late_joiners_miss_nothing(1, &["--redis", &redis.url()], &["-d", "4"], 30, 501);
}

/// Publishes through one router, joins with history through another, on
/// one store: each joiner still gets one run of numbers, 3,000 publishes
/// or more, however busy the machine.
fn late_joiners_through_another_router_miss_nothing(store: &str) {
    late_joiners_miss_nothing(2, &["--redis", store], &["-d", "8", "--min-messages", "3000"], 20, 3_000);
}

#[test]
fn joins_through_another_router_get_the_kept_ones_then_live_with_none_lost_or_repeated() {
    let redis = Redis::start();
    late_joiners_through_another_router_miss_nothing(&redis.url());
}

#[test]
fn the_same_holds_across_routers_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    late_joiners_through_another_router_miss_nothing(&cluster.url());
}

fn texts(history: &Value) -> Vec<&str> {
    history["entries"].as_array().unwrap().iter().map(|e| e["data"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn history_stays_within_its_count_and_bytes_and_outlives_a_router_restart_on_redis() {
    let redis = Redis::start();
    let bounds = ["--history", "news-=3/60", "--history-max-bytes", "64", "--redis", &redis.url()];
    let (mut stack, gateways) = e2e::cluster(&bounds, 1, &[], &[]);
    let router = stack.router_http_port;
    let call = |command: &str, body: Value| {
        let (status, reply) = http::post(router, &format!("/v1/{command}"), body);
        assert_eq!(status, 200, "{command}: {reply}");
        reply
    };
    for n in 1..=5 {
        call("publish", json!({"channel": "news-1", "data": format!("n{n}")}));
    }
    let history = call("history", json!({"channel": "news-1"}));
    assert_eq!(texts(&history), ["n3", "n4", "n5"], "the last 3: {history}");
    let offsets: Vec<&str> =
        history["entries"].as_array().unwrap().iter().map(|e| e["offset"].as_str().unwrap()).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets grow: {offsets:?}");
    assert_eq!(texts(&call("history", json!({"channel": "news-1", "limit": 1}))), ["n5"]);
    assert_eq!(
        call("history", json!({"channel": "chat"})),
        json!({"entries": []}),
        "a channel --history does not name"
    );

    call("publish", json!({"channel": "news-1", "data": "x".repeat(65)}));
    assert_eq!(texts(&call("history", json!({"channel": "news-1"}))), ["n3", "n4", "n5"], "too large to keep");
    for n in 6..=8 {
        call("publish", json!({"channel": "news-1", "data": format!("{n}{}", "y".repeat(29))}));
    }
    let history = call("history", json!({"channel": "news-1"}));
    assert_eq!(texts(&history).len(), 2, "two of 30 bytes fit in 64: {history}");
    assert!(texts(&history)[1].starts_with('8'));
    assert_eq!(metric(router, "router_history_too_large_total"), 1.0);
    assert_eq!(metric(router, "router_history_appended_total"), 8.0);
    assert_eq!(metric(router, "router_history_trimmed_total"), 6.0);
    let ttl: i64 = redis_cli(redis.port, &["PTTL", "fk:h:news-1"]).trim().parse().unwrap();
    assert!(ttl > 50_000 && ttl <= 60_000, "kept for the channel's time to live: {ttl}");

    let port = stack.router_port;
    stack.proc_mut("router").kill();
    let again = ["--listen", &local(port).to_string(), "--http", &local(router).to_string()];
    let args: Vec<&str> = again.into_iter().chain(bounds).collect();
    stack.procs.push(Proc::project("router", &args, "router-again"));
    wait_for_port(router, "router again");
    stack.wait_for_gateways(1);
    assert_eq!(call("history", json!({"channel": "news-1"})), history, "the same after the restart");

    // A late joiner gets them, oldest first, before live messages.
    let mut client = Client::connect(&format!("{}?resume=1", gateways[0].url)).await;
    let id = client.recv_json().await["id"].as_str().unwrap().to_owned();
    stack.wait_for_clients(1);
    call("join", json!({"channel": "news-1", "sessions": [id], "history": true}));
    call("publish", json!({"channel": "news-1", "data": "live"}));
    for kept in texts(&history) {
        assert_eq!(client.recv().await.into_text().unwrap().as_str(), kept);
    }
    assert_eq!(client.recv().await.into_text().unwrap().as_str(), "live");
    call("join", json!({"channel": "news-1", "sessions": [id], "history": true}));
    call("publish", json!({"channel": "news-1", "data": "after"}));
    assert_eq!(client.recv().await.into_text().unwrap().as_str(), "after", "a member joining again gets no history");
}

/// A message of a kept channel in its envelope (`--history-envelope`): its text and offset.
async fn enveloped(client: &mut Client) -> (String, String) {
    let envelope = client.recv_json().await;
    assert_eq!((&envelope["fk"], &envelope["channel"]), (&json!("pub"), &json!("news-1")), "{envelope}");
    (envelope["data"].as_str().unwrap().to_owned(), envelope["offset"].as_str().unwrap().to_owned())
}

/// A client whose session could not be resumed (it missed more than its
/// buffer while away) comes back as a new session, and its backend joins
/// that one with the last offset the client saw: it gets exactly what it
/// missed, then live messages. An offset no longer kept says so.
#[tokio::test]
async fn a_client_that_missed_more_than_its_buffer_recovers_the_channel_from_history_by_offset() {
    let router_args = ["--history", "news-=6", "--history-envelope", "news-"];
    let (stack, gateways) = e2e::cluster(&router_args, 1, &["--resume-buffer-messages", "2"], &[]);
    let router = stack.router_http_port;
    let call = |command: &str, body: Value| {
        let (status, reply) = http::post(router, &format!("/v1/{command}"), body);
        assert_eq!(status, 200, "{command}: {reply}");
        reply
    };
    let url = &gateways[0].url;
    let mut client = Client::connect(&format!("{url}?resume=1")).await;
    let hello = client.recv_json().await;
    let (id, token) = (hello["id"].as_str().unwrap().to_owned(), hello["resume"].as_str().unwrap().to_owned());
    stack.wait_for_clients(1);
    call("join", json!({"channel": "news-1", "sessions": [id]}));
    for n in 1..=2 {
        call("publish", json!({"channel": "news-1", "data": format!("m{n}")}));
    }
    assert_eq!(enveloped(&mut client).await.0, "m1");
    let (text, seen) = enveloped(&mut client).await;
    assert_eq!(text, "m2");

    client.kill();
    // Parked (its client gone), so what follows waits in its buffer of 2.
    let parked = || metric(gateways[0].admin, "gateway_sessions_offline") == 1.0;
    assert!(e2e::eventually(Duration::from_secs(5), parked).await, "the gateway saw the drop");
    for n in 3..=6 {
        call("publish", json!({"channel": "news-1", "data": format!("m{n}")}));
    }
    // The pushes reach the parked session on the gateway's link, after the
    // publishes' answers: it ends once they pass its buffer.
    let overflowed = || metric(gateways[0].admin, r#"gateway_client_closes_total{reason="resume_buffer_full"}"#) == 1.0;
    assert!(e2e::eventually(Duration::from_secs(5), overflowed).await, "the session outgrew its buffer");
    let mut refused = Client::connect(&format!("{url}?resume={token}&last=2")).await;
    let code: u16 = refused.expect_close().await.expect("a close code").code.into();
    assert!((4100..=4103).contains(&code), "the session could not come back: {code}");

    let mut again = Client::connect(&format!("{url}?resume=1")).await;
    let new_id = again.recv_json().await["id"].as_str().unwrap().to_owned();
    let online = || call("online", json!({"sessions": [new_id]}))["sessions"] == json!([new_id]);
    assert!(e2e::eventually(Duration::from_secs(5), online).await);
    let reply = call("join", json!({"channel": "news-1", "sessions": [new_id], "since": seen}));
    assert_eq!(reply, json!({"sessions": 1, "recovered": true}));
    call("publish", json!({"channel": "news-1", "data": "live"}));
    for expected in ["m3", "m4", "m5", "m6", "live"] {
        assert_eq!(enveloped(&mut again).await.0, expected);
    }
    let history = call("history", json!({"channel": "news-1", "since": seen}));
    assert_eq!((texts(&history), &history["recovered"]), (vec!["m3", "m4", "m5", "m6", "live"], &json!(true)));

    // m1 is no longer kept (6 are): what is kept comes, and the reply says the rest is lost.
    let kept = call("history", json!({"channel": "news-1"}));
    assert_eq!(texts(&kept)[0], "m2");
    let mut late = Client::connect(&format!("{url}?resume=1")).await;
    let late_id = late.recv_json().await["id"].as_str().unwrap().to_owned();
    let online = || call("online", json!({"sessions": [late_id]}))["sessions"] == json!([late_id]);
    assert!(e2e::eventually(Duration::from_secs(5), online).await);
    let too_old = kept["entries"][0]["offset"].as_str().unwrap().parse::<u64>().unwrap() - 1;
    let reply = call("join", json!({"channel": "news-1", "sessions": [late_id], "since": too_old.to_string()}));
    assert_eq!(reply, json!({"sessions": 1, "recovered": false}));
    assert_eq!(enveloped(&mut late).await.0, "m2", "all that is kept");
}
