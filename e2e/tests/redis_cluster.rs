//! The routers and chat-app on a real three-master Redis Cluster: the chat
//! and the queue with two routers, and `redis-cli --cluster reshard` under
//! traffic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::processes::{local, redis_cli, wait_for_port};
use e2e::{chat, eventually, free_port, http, queue, Client, Proc, RedisCluster, Stack, StackOptions};
use serde_json::json;

/// A publish's number and status, and the status of the join or leave
/// after it, with how long that took.
type Answered = (usize, u16, u16, Duration);

/// The slot every key with `prefix` lands in (its hash tag).
fn slot_of(cluster: &RedisCluster, prefix: &str) -> u16 {
    redis_cli(cluster.ports[0], &["CLUSTER", "KEYSLOT", &format!("{{{prefix}}}")]).trim().parse().unwrap()
}

fn keys_in_slot(cluster: &RedisCluster, slot: u16) -> u64 {
    let count = redis_cli(cluster.owner(slot), &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]);
    count.trim().parse().unwrap()
}

/// Keys added to the router's slot before it moves.
const FILLER_KEYS: usize = 5000;

/// Writes `count` keys under `prefix`'s hash tag to the node at `port`.
fn fill_slot(port: u16, prefix: &str, count: usize) {
    use std::io::Write;
    let mut cli = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let commands: String = (0..count).map(|i| format!("SET {{{prefix}}}filler:{i} x\n")).collect();
    cli.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
    assert!(cli.wait().unwrap().success());
}

fn keys_in_all(cluster: &RedisCluster) -> u64 {
    cluster.ports.iter().map(|port| redis_cli(*port, &["DBSIZE"]).trim().parse::<u64>().unwrap()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_and_the_queue_run_on_a_cluster_with_two_routers() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let (b_port, b_http) = (free_port(), free_port());
    let b_args = ["--listen", &local(b_port).to_string(), "--http", &local(b_http).to_string(), "--redis", &url];
    let _router_b = Proc::project("router", &b_args, "router-b");
    wait_for_port(b_port, "router-b");
    let options = StackOptions {
        redis: Some(url.clone()),
        gateway_args: vec!["--http-route".into(), "/api/".into(), "--router".into(), local(b_port).to_string()],
        app_args: vec!["--queue-capacity".into(), "1".into(), "--operator-token".into(), queue::OPERATOR_TOKEN.into()],
        ..Default::default()
    };
    let stack = Stack::start(options);
    let linked = || http::post(b_http, "/v1/info", json!({})).1["gateways"].as_array().map(Vec::len) == Some(1);
    assert!(eventually(Duration::from_secs(15), linked).await, "router b has the gateway");
    chat::scenario(&stack.ws_url("/")).await;
    queue::scenario(&stack).await;
    let (router_keys, app_keys) =
        (keys_in_slot(&cluster, slot_of(&cluster, "fk:")), keys_in_slot(&cluster, slot_of(&cluster, "chat:")));
    assert!(router_keys > 0 && app_keys > 0, "the router's and the app's keys are there");
    assert_eq!(router_keys + app_keys, keys_in_all(&cluster), "every key carries one of the two hash tags");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migration_under_traffic_loses_no_member_and_no_publish() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let (stack, gateways) = e2e::cluster(&["--redis", &url], 1, &[], &["--greet"]);
    let router = stack.router_http_port;
    let (mut members, mut ids) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let mut client = Client::connect(&gateways[0].url).await;
        ids.push(client.recv().await.into_text().unwrap().to_string());
        members.push(client);
    }
    let (status, _) = http::post(router, "/v1/join", json!({"channel": "room", "sessions": ids}));
    assert_eq!(status, 200);

    // Publishes, and joins and leaves that write the slot, while it moves.
    let answers: Arc<Mutex<Vec<Answered>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (answers, stop, probe) = (answers.clone(), stop.clone(), ids[0].clone());
        std::thread::spawn(move || {
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let publish = json!({"channel": "room", "data": n.to_string()}).to_string();
                let membership = json!({"channel": format!("probe-{}", n % 5), "sessions": [probe]}).to_string();
                let change = if n % 2 == 0 { "/v1/join" } else { "/v1/leave" };
                let status =
                    |path, body: &str| http::request(router, "POST", path, body).map_or(0, |(status, _)| status);
                let published = status("/v1/publish", &publish);
                let asked = Instant::now();
                let changed = status(change, &membership);
                answers.lock().unwrap().push((n, published, changed, asked.elapsed()));
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let slot = slot_of(&cluster, "fk:");
    let before = cluster.owner(slot);
    // A slot of a few keys moves in milliseconds: 5,000 more under the
    // router's tag make its move last, as a large membership's would.
    fill_slot(before, "fk:", FILLER_KEYS);
    let keys = keys_in_slot(&cluster, slot);
    let resharding = Instant::now();
    let after = cluster.reshard_away(slot);
    let resharded_in = resharding.elapsed();
    assert_ne!(before, after);
    assert_eq!(cluster.owner(slot), after, "the slot moved");
    assert_eq!(redis_cli(before, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]).trim(), "0");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();

    let (status, count) = http::post(router, "/v1/count", json!({"channel": "room"}));
    assert_eq!((status, count["count"].as_u64()), (200, Some(20)), "every member still in its channel");
    let (status, _) = http::post(router, "/v1/publish", json!({"channel": "room", "data": "end"}));
    assert_eq!(status, 200);
    let answers = answers.lock().unwrap().clone();
    let refused: Vec<_> = answers.iter().filter(|(_, p, m, _)| *p != 200 || *m != 200).collect();
    let longest = answers.iter().map(|(_, _, _, took)| *took).max().unwrap();
    for member in &mut members {
        let got: Vec<usize> = member.recv_until("end").await.iter().map(|n| n.parse().unwrap()).collect();
        let delivered = answers.iter().filter(|(_, p, _, _)| *p == 200).all(|(n, _, _, _)| got.contains(n));
        assert!(delivered, "every publish answered 200 arrives");
    }
    println!(
        "slot {slot} ({keys} keys) resharded from {before} to {after} in {resharded_in:?}, with every other slot of \
         that master, under {} publishes and {} joins and leaves: {} refused ({refused:?}); the longest join or \
         leave took {longest:?}",
        answers.len(),
        answers.len(),
        refused.len()
    );
    assert!(refused.is_empty(), "MOVED and ASK are followed: nothing refused");
}
