//! Every move of the store brings back what it had confirmed: a Redis
//! Cluster's replica promoted without the last joins, a Redis restarted
//! without its data. The routers see what was lost (a write fence that
//! counts fewer, an epoch gone) and the gateways report every membership
//! again. Real Redis processes, two routers.

use std::time::Duration;

use e2e::processes::{local, redis_cli, wait_for_port};
use e2e::{eventually, free_port, http, Client, ClusterGateway, Proc, Redis, RedisCluster, Stack};
use serde_json::json;

const MEMBERS: usize = 10;

/// Two routers on the store at `url`, and a gateway linked to both; the
/// second router's HTTP port and process.
async fn two_routers(url: &str) -> (Stack, Vec<ClusterGateway>, u16, Proc) {
    let (b_port, b_http) = (free_port(), free_port());
    let b_args = ["--listen", &local(b_port).to_string(), "--http", &local(b_http).to_string(), "--redis", url];
    let router_b = Proc::project("router", &b_args, "router-b");
    wait_for_port(b_port, "router-b");
    let b_addr = local(b_port).to_string();
    let (stack, gateways) = e2e::cluster(&["--redis", url], 1, &["--router", &b_addr], &["--greet"]);
    let linked = || http::post(b_http, "/v1/info", json!({})).1["gateways"].as_array().map(Vec::len) == Some(1);
    assert!(eventually(Duration::from_secs(15), linked).await, "router b has the gateway");
    (stack, gateways, b_http, router_b)
}

/// `MEMBERS` clients of `gateway`, and their session ids.
async fn members(gateway: &ClusterGateway) -> (Vec<Client>, Vec<String>) {
    let (mut clients, mut ids) = (Vec::new(), Vec::new());
    for _ in 0..MEMBERS {
        let mut client = Client::connect(&gateway.url).await;
        ids.push(client.recv().await.into_text().unwrap().to_string());
        clients.push(client);
    }
    (clients, ids)
}

fn count(router: u16, channel: &str) -> serde_json::Value {
    http::post(router, "/v1/count", json!({ "channel": channel })).1["count"].clone()
}

/// The replication offsets of the master at `master` and of its replica
/// at `replica`, as the master last heard from it.
fn offsets(master: u16, replica: u16) -> (Option<u64>, Option<u64>) {
    let info = redis_cli(master, &["INFO", "replication"]);
    let offset =
        info.lines().find_map(|line| line.strip_prefix("master_repl_offset:")).and_then(|o| o.trim().parse().ok());
    let replica_line =
        info.lines().find(|line| line.starts_with("slave") && line.contains(&format!("port={replica},")));
    let replica_offset =
        replica_line.and_then(|line| line.split(',').find_map(|kv| kv.strip_prefix("offset=")?.parse().ok()));
    (offset, replica_offset)
}

/// Whether the replica at `replica` has all its master at `master` took
/// so far (later writes, the routers' upkeep, may still be on their way).
async fn caught_up(master: u16, replica: u16) -> bool {
    let Some(target) = offsets(master, replica).0 else { return false };
    eventually(Duration::from_secs(10), || offsets(master, replica).1.is_some_and(|offset| offset >= target)).await
}

/// A Redis Cluster of three masters with a replica each, two routers on
/// it: joins a router confirmed just before `kill -9` of the master that
/// holds their channel, while its replica's link was cut, are missing on
/// the promoted replica; the router sees that shard's write fence count
/// fewer, and the gateway's report puts them back, as a Sentinel
/// failover's does. (Only a Sentinel move started the resync: they stayed
/// lost.) The other masters' channels stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_confirmed_before_a_cluster_failover_are_back_after_it() {
    let mut cluster = RedisCluster::start_with(1);
    let (stack, gateways, b_http, _router_b) = two_routers(&cluster.url()).await;
    let (_clients, ids) = members(&gateways[0]).await;
    let a_http = stack.router_http_port;
    assert_eq!(http::post(a_http, "/v1/join", json!({"channel": "room", "sessions": ids})).0, 200);
    assert_eq!(http::post(a_http, "/v1/join", json!({"channel": "last", "sessions": ids[..1]})).0, 200);
    let found = cluster.keys("{fk:*}ch:last");
    let slot = cluster.slot(&found[0].1);
    let master = cluster.owner(slot);
    let replica = cluster.replica_of(master);
    assert!(caught_up(master, replica).await, "the replica has the first member");

    // The joins that follow never reach the replica: its link is cut just
    // before, and a wrong password keeps it from coming back.
    redis_cli(replica, &["CONFIG", "SET", "masterauth", "wrong"]);
    redis_cli(master, &["CLIENT", "KILL", "TYPE", "replica"]);
    let (status, joined) = http::post(a_http, "/v1/join", json!({"channel": "last", "sessions": ids}));
    assert_eq!((status, &joined["sessions"]), (200, &json!(MEMBERS - 1)), "confirmed");
    cluster.kill(master);
    let promoted = || cluster.serving(slot) == Some(replica);
    assert!(eventually(Duration::from_secs(30), promoted).await, "the cluster promoted the replica");

    let back = || count(b_http, "last") == MEMBERS && count(a_http, "room") == MEMBERS;
    assert!(eventually(Duration::from_secs(15), back).await, "the confirmed joins are back: {}", count(b_http, "last"));
    let resynced = stack.proc("router").log_text().contains("the store lost writes it had confirmed");
    assert!(resynced, "the router that confirmed them saw them lost");
}

/// A Redis restarted without its data, under two routers: every join
/// confirmed before it, the last one included, is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_confirmed_before_a_redis_restart_without_its_data_are_back_after_it() {
    let mut redis = Redis::start();
    let (stack, gateways, b_http, _router_b) = two_routers(&redis.url()).await;
    let (_clients, ids) = members(&gateways[0]).await;
    let a_http = stack.router_http_port;
    assert_eq!(http::post(a_http, "/v1/join", json!({"channel": "room", "sessions": ids})).0, 200);
    let (status, _) = http::post(a_http, "/v1/join", json!({"channel": "last", "sessions": ids}));
    assert_eq!(status, 200);
    redis.restart_empty();
    let back = || count(b_http, "last") == MEMBERS && count(a_http, "room") == MEMBERS;
    assert!(eventually(Duration::from_secs(15), back).await, "the confirmed joins are back");
}
