//! Channel history (the router's `--history`): a member that joins while
//! messages flow gets the last ones kept, then the live ones, with none
//! lost or repeated at the seam (loadgen checks every number); a backend
//! reads them with `/v1/history`; they stay within their count and bytes,
//! and outlive a router restart on Redis. Real processes throughout.

use std::process::Command;
use std::time::Duration;

use e2e::processes::{bin_dir, local, redis_cli, wait_for_port};
use e2e::{http, metric, Client, Proc, Redis};
use serde_json::{json, Value};

fn loadgen(args: &[&str]) -> (bool, Value) {
    let output = Command::new(bin_dir().join("loadgen")).arg("--json").args(args).output().expect("run loadgen");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no JSON report: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.success(), report)
}

/// Joiners during a stream of publishes, through two gateways, on a
/// router with `router_args`: each run checked by loadgen.
fn late_joiners_miss_nothing(router_args: &[&str]) {
    let args: Vec<&str> = ["--history", "history-=50"].into_iter().chain(router_args.iter().copied()).collect();
    let (stack, gateways) = e2e::cluster(&args, 2, &[], &[]);
    let router = local(stack.router_http_port).to_string();
    let late_join = ["late-join", "--router", &router, "--kept", "50", "-d", "4", "-j", "30"];
    let urls = ["--url", &gateways[0].url, "--url", &gateways[1].url];
    let (ok, report) = loadgen(&[&urls[..], &late_join].concat());
    assert!(ok && report["ok"] == true, "{report:#}");
    let figures = &report["figures"];
    assert!(figures["messages"].as_u64().unwrap() > 500, "{report:#}");
    assert!(figures["kept_received"].as_u64().unwrap() >= 29 * 50, "each joiner got the kept ones: {report:#}");
    assert!(figures["live_received"].as_u64().unwrap() > 0, "{report:#}");
    assert!(metric(stack.router_http_port, "router_history_sent_total") >= 29.0 * 50.0);
}

#[test]
fn a_member_joining_while_messages_flow_gets_the_kept_ones_then_live_with_none_lost_or_repeated() {
    late_joiners_miss_nothing(&[]);
}

#[test]
fn the_same_seam_holds_on_redis() {
    let redis = Redis::start();
    late_joiners_miss_nothing(&["--redis", &redis.url()]);
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
    client.expect_silence(Duration::from_millis(300)).await;
}
