//! Redis that loses its master: two routers on a Sentinel group follow the
//! failover by themselves, and what it costs is measured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::processes::{local, redis_cli, wait_for_port};
use e2e::{chat, eventually, free_port, http, queue, Client, Proc, SentinelGroup, Stack, StackOptions};
use serde_json::json;

const MEMBERS_PER_GATEWAY: usize = 10;
/// A publish every this long, through the two routers in turn.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);
/// The Sentinels' down-after (1 s) and election, and the routers' next
/// question to them: the documented bound on a failover's window.
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

/// Whether `router` reads and writes on the master now: the channel's
/// count is `members`, and a join (of a member to a second channel) is
/// stored.
fn on_a_master(router: u16, members: usize, probe: &str) -> bool {
    let (status, count) = http::post(router, "/v1/count", json!({"channel": "room"}));
    let (joined, _) = http::post(router, "/v1/join", json!({"channel": "probe", "sessions": [probe]}));
    status == 200 && count["count"] == members && joined == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_follow_a_sentinel_failover_and_every_client_stays_in_its_channel() {
    let mut group = SentinelGroup::start();
    assert!(eventually(Duration::from_secs(15), || group.replica_known()).await, "the sentinels know the replica");
    let url = group.url();
    let (b_port, b_http) = (free_port(), free_port());
    let b_args = ["--listen", &local(b_port).to_string(), "--http", &local(b_http).to_string(), "--redis", &url];
    let router_b = Proc::project("router", &b_args, "router-b");
    wait_for_port(b_port, "router-b");
    let b_addr = local(b_port).to_string();
    let (stack, gateways) = e2e::cluster(&["--redis", &url], 2, &["--router", &b_addr], &["--greet"]);
    let routers = [stack.router_http_port, b_http];
    let linked = |router: u16| {
        let (_, info) = http::post(router, "/v1/info", json!({}));
        info["gateways"].as_array().map(Vec::len) == Some(2)
    };
    assert!(eventually(Duration::from_secs(15), || linked(b_http)).await, "router b has both gateways");

    let (mut members, mut ids) = (Vec::new(), Vec::new());
    for gateway in &gateways {
        for _ in 0..MEMBERS_PER_GATEWAY {
            let mut client = Client::connect(&gateway.url).await;
            ids.push(client.recv().await.into_text().unwrap().to_string());
            members.push(client);
        }
    }
    let (status, _) = http::post(routers[0], "/v1/join", json!({"channel": "room", "sessions": ids}));
    assert_eq!(status, 200);
    let everyone = members.len();
    let both_on_it = || routers.iter().all(|r| on_a_master(*r, everyone, &ids[0]));
    assert!(eventually(Duration::from_secs(5), both_on_it).await, "both routers on the master");

    // Publishes flow through both routers while the master dies.
    let answers = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (answers, stop) = (answers.clone(), stop.clone());
        std::thread::spawn(move || {
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let router = routers[n % 2];
                let body = json!({"channel": "room", "data": n.to_string()}).to_string();
                // 0: no answer at all.
                let status = http::request(router, "POST", "/v1/publish", &body).map_or(0, |(status, _)| status);
                answers.lock().unwrap().push((n, status, Instant::now()));
                std::thread::sleep(PUBLISH_EVERY);
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let old_master = group.master_port;
    // The routers' epoch is on the replica: a loss of it is not what
    // brings back what follows.
    let epoch = || redis_cli(group.replica_port, &["GET", "fk:epoch"]).trim() == "1";
    assert!(eventually(Duration::from_secs(5), epoch).await, "the epoch replicated");
    // The last write before the master dies never reaches the replica: its
    // link is cut just before, and a wrong password keeps it from coming back.
    redis_cli(group.replica_port, &["CONFIG", "SET", "masterauth", "wrong"]);
    redis_cli(old_master, &["CLIENT", "KILL", "TYPE", "replica"]);
    let (status, _) = http::post(routers[0], "/v1/join", json!({"channel": "last", "sessions": [ids[1]]}));
    assert_eq!(status, 200);
    let killed = Instant::now();
    group.kill_master();
    let promoted = eventually(FAILOVER_BOUND, || group.master_now() == Some(group.replica_port)).await;
    assert!(promoted, "the sentinels promoted the replica");
    let promoted_after = killed.elapsed();
    let recovered = eventually(FAILOVER_BOUND, || routers.iter().all(|r| on_a_master(*r, everyone, &ids[0]))).await;
    let recovered_after = killed.elapsed();
    assert!(recovered, "both routers on the new master, with every member, within {FAILOVER_BOUND:?}");
    assert_ne!(group.master_now(), Some(old_master));
    // What the old master took last may not have reached the replica: each
    // router has its gateways report every membership again.
    let resynced = |log: String| log.contains("redis failed over to a new master: asking the gateways to resync");
    let both = || resynced(stack.proc("router").log_text()) && resynced(router_b.log_text());
    assert!(eventually(Duration::from_secs(5), both).await, "both routers resync after the failover");
    let last = || http::post(routers[1], "/v1/count", json!({"channel": "last"})).1["count"] == 1;
    assert!(eventually(Duration::from_secs(5), last).await, "the join the replica never got is back");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();

    let (status, _) = http::post(routers[0], "/v1/publish", json!({"channel": "room", "data": "end"}));
    assert_eq!(status, 200);
    let answers = answers.lock().unwrap().clone();
    let refused: Vec<usize> = answers.iter().filter(|(_, status, _)| *status != 200).map(|(n, _, _)| *n).collect();
    let after_recovery: Vec<usize> =
        answers.iter().filter(|(_, _, at)| *at > killed + recovered_after).map(|(n, _, _)| *n).collect();
    let mut missed = 0;
    for member in &mut members {
        let got: Vec<usize> = member.recv_until("end").await.iter().map(|n| n.parse().unwrap()).collect();
        let answered_ok = answers.iter().filter(|(_, status, _)| *status == 200).map(|(n, _, _)| *n);
        missed += answered_ok.clone().filter(|n| !got.contains(n)).count();
        assert!(after_recovery.iter().all(|n| got.contains(n)), "every publish after recovery arrives");
    }
    println!(
        "failover: promoted after {promoted_after:?}, routers on the new master after {recovered_after:?}; \
         {} publishes, {} refused during the window ({refused:?}), {missed} answered 200 and not delivered",
        answers.len(),
        refused.len()
    );
    assert_eq!(missed, 0, "a publish answered 200 reaches every member");
    let window = (recovered_after.as_millis() / PUBLISH_EVERY.as_millis()) as usize + 1;
    assert!(refused.len() <= window, "{} refused, more than the window holds ({window})", refused.len());
}

/// chat-app keeps its users and the game-login queue on the master a
/// Sentinel group names, as the router keeps membership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_and_the_queue_run_on_a_sentinel_groups_master() {
    let group = SentinelGroup::start();
    let options = StackOptions {
        redis: Some(group.url()),
        gateway_args: vec!["--http-route".into(), "/api/".into()],
        app_args: vec!["--queue-capacity".into(), "1".into(), "--operator-token".into(), queue::OPERATOR_TOKEN.into()],
        ..Default::default()
    };
    let stack = Stack::start(options);
    chat::scenario(&stack.ws_url("/")).await;
    queue::scenario(&stack).await;
    let keys = std::process::Command::new("redis-cli").args(["-p", &group.master_port.to_string(), "DBSIZE"]).output();
    let keys: u64 = String::from_utf8_lossy(&keys.unwrap().stdout).trim().parse().unwrap();
    assert!(keys > 0, "the state is on the master");
}
