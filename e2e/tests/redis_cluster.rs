//! The routers and chat-app on a real three-master Redis Cluster: the chat
//! and the queue with two routers, and `redis-cli --cluster reshard` under
//! traffic.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::processes::{local, redis_cli, wait_for_port};
use e2e::{chat, eventually, free_port, http, queue, Client, Proc, RedisCluster, Stack, StackOptions};
use serde_json::json;

/// A publish's number and status, and the status of the join or leave
/// after it, with how long that took.
type Answered = (usize, u16, u16, Duration);

/// The one key that matches `pattern`, and the master holding it.
fn key(cluster: &RedisCluster, pattern: &str) -> (u16, String) {
    let found = cluster.keys(pattern);
    assert_eq!(found.len(), 1, "{pattern}: {found:?}");
    found.into_iter().next().unwrap()
}

fn keys_in_slot(cluster: &RedisCluster, slot: u16) -> u64 {
    let count = redis_cli(cluster.owner(slot), &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]);
    count.trim().parse().unwrap()
}

/// Keys added to the router's slot before it moves.
const FILLER_KEYS: usize = 5000;

/// Writes `count` keys under hash tag `tag` (with its braces) to the node at `port`.
fn fill_slot(port: u16, tag: &str, count: usize) {
    use std::io::Write;
    let mut cli = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let commands: String = (0..count).map(|i| format!("SET {tag}filler:{i} x\n")).collect();
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
    let (router_keys, app_keys) = (cluster.keys("{fk:*}*"), cluster.keys("{chat:}*"));
    assert!(!router_keys.is_empty() && !app_keys.is_empty(), "the router's and the app's keys are there");
    assert_eq!(
        (router_keys.len() + app_keys.len()) as u64,
        keys_in_all(&cluster),
        "every key has a router's shard tag or the app's tag"
    );
}

/// A channel's keys (members, presence, history) live together on one
/// master, each session's beside it or elsewhere, and channels spread
/// over all three masters: adding masters adds room and throughput.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channels_keys_live_on_one_master_and_the_channels_on_all_three() {
    let cluster = RedisCluster::start();
    let (stack, gateways) =
        e2e::cluster(&["--redis", &cluster.url(), "--history", "presence-=5"], 1, &[], &["--greet"]);
    let router = stack.router_http_port;
    let mut client = Client::connect(&gateways[0].url).await;
    let id = client.recv().await.into_text().unwrap().to_string();
    let channels: Vec<String> = (0..12).map(|n| format!("presence-room-{n}")).collect();
    for channel in &channels {
        let joined = http::post(router, "/v1/join", json!({"channel": channel, "sessions": [id], "user": "ann"}));
        assert_eq!(joined.0, 200, "{joined:?}");
        assert_eq!(http::post(router, "/v1/publish", json!({"channel": channel, "data": "hi"})).0, 200);
    }
    let mut holders = HashMap::new();
    for channel in &channels {
        let kinds = ["ch", "pr", "prz", "h", "hb"];
        let keys: Vec<(u16, String)> =
            kinds.iter().map(|kind| key(&cluster, &format!("{{fk:*}}{kind}:{channel}"))).collect();
        let masters: HashSet<u16> = keys.iter().map(|(port, _)| *port).collect();
        assert_eq!(masters.len(), 1, "{channel}'s keys on one master: {keys:?}");
        holders.insert(channel.clone(), keys[0].0);
    }
    let masters: HashSet<u16> = holders.values().copied().collect();
    assert_eq!(masters, cluster.master_ports().into_iter().collect(), "channels on every master: {holders:?}");
    let (_, session_key) = key(&cluster, &format!("{{fk:*}}sc:{id}"));
    let session_channels = redis_cli(cluster.owner(cluster.slot(&session_key)), &["SCARD", &session_key]);
    assert_eq!(session_channels.trim(), "12", "the session's own list, in its own shard");
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
    let (before, room) = key(&cluster, "{fk:*}ch:room");
    let slot = cluster.slot(&room);
    // A slot of a few keys moves in milliseconds: 5,000 more under the
    // room's tag make its move last, as a large membership's would.
    fill_slot(before, &room[..=room.find('}').unwrap()], FILLER_KEYS);
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
