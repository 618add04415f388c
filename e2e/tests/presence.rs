//! Presence channels (`presence-*`): the router tells the members who
//! joins, leaves, goes away and comes back, in order with the channel's
//! messages; lists the members with their info; keeps them in Redis
//! across its own restart; and tells a backend when a channel fills and
//! empties. Real router, gateways and echo backend; Redis where named.

use std::time::Duration;

use e2e::processes::{local, wait_for_port};
use e2e::{backend_events, http, scratch_file, Client, Proc, Redis, RedisCluster, Stack};
use serde_json::{json, Value};

const ROOM: &str = "presence-quiz";

struct Room {
    stack: Stack,
    url: String,
    log: std::path::PathBuf,
}

/// A router (with `router_args`), the echo backend logging its events, and
/// one gateway (with `gateway_args`).
fn room(router_args: &[&str], gateway_args: &[&str]) -> Room {
    let log = scratch_file("presence-events.jsonl");
    let (stack, mut gateways) = e2e::cluster(router_args, 1, gateway_args, &["--log", log.to_str().unwrap()]);
    Room { stack, url: gateways.remove(0).url, log }
}

impl Room {
    fn router(&self, command: &str, body: Value) -> Value {
        let (status, reply) = http::post(self.stack.router_http_port, &format!("/v1/{command}"), body);
        assert_eq!(status, 200, "{command}: {reply}");
        reply
    }

    /// A resumable client, its id and resume token, once the router knows it.
    async fn client(&self, query: &str) -> (Client, String, String) {
        let mut client = Client::connect(&format!("{}?resume=1{query}", self.url)).await;
        let hello = client.recv_json().await;
        let (id, token) = (hello["id"].as_str().unwrap().to_owned(), hello["resume"].as_str().unwrap().to_owned());
        let known = || self.router("online", json!({"sessions": [id]}))["sessions"] == json!([id]);
        assert!(e2e::eventually(Duration::from_secs(5), known).await, "the router never heard of {id}");
        (client, id, token)
    }

    fn join(&self, id: &str, user: &str, info: Value) {
        self.router("join", json!({"channel": ROOM, "sessions": [id], "user": user, "info": info}));
    }

    fn publish(&self, text: &str) {
        self.router("publish", json!({"channel": ROOM, "data": text}));
    }

    /// The backend's occupancy events for the room: (event, SESSIONID).
    fn occupancy(&self, n: usize) -> Vec<(String, String)> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen: Vec<(String, String)> = backend_events(&self.log, 0)
                .into_iter()
                .filter(|e| matches!(e["event"].as_str(), Some("occupied" | "vacated")))
                .inspect(|e| assert_eq!(e["params"]["CHANNEL"], ROOM, "{e}"))
                .map(|e| {
                    (e["event"].as_str().unwrap().to_owned(), e["params"]["SESSIONID"].as_str().unwrap().to_owned())
                })
                .collect();
            if seen.len() >= n {
                return seen;
            }
            assert!(std::time::Instant::now() < deadline, "the backend saw {seen:?}, wanted {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A presence event as a member receives it.
fn event(kind: &str, id: &str, user: &str, info: Value) -> Value {
    json!({"fk": "presence", "event": kind, "channel": ROOM, "session": id, "user": user, "info": info})
}

fn member(id: &str, user: &str, info: Value, online: bool) -> Value {
    json!({"session": id, "user": user, "info": info, "online": online})
}

async fn text(client: &mut Client) -> String {
    client.recv().await.into_text().unwrap().to_string()
}

#[tokio::test]
async fn joins_and_leaves_reach_the_members_in_order_with_the_channels_messages() {
    let room = room(&[], &[]);
    let (mut ann, ann_id, _) = room.client("").await;
    room.join(&ann_id, "ann", json!({"team": 1}));
    let ann_member = member(&ann_id, "ann", json!({"team": 1}), true);
    let listed = json!({"fk": "presence", "event": "members", "channel": ROOM, "count": 1, "members": [ann_member]});
    assert_eq!(ann.recv_json().await, listed, "a new member gets the list first");
    assert_eq!(room.occupancy(1), [("occupied".to_owned(), ann_id.clone())], "the first member fills the channel");
    room.publish("q1");

    let (mut bob, bob_id, _) = room.client("").await;
    room.join(&bob_id, "bob", json!({"team": 2}));
    room.publish("q2");
    let bob_member = member(&bob_id, "bob", json!({"team": 2}), true);
    let mut both = vec![ann_member.clone(), bob_member];
    both.sort_by_key(|m| m["session"].as_str().unwrap().to_owned());
    assert_eq!(bob.recv_json().await["members"], json!(both));
    assert_eq!(text(&mut bob).await, "q2", "then live messages, and not its own join");
    assert_eq!(text(&mut ann).await, "q1");
    assert_eq!(ann.recv_json().await, event("join", &bob_id, "bob", json!({"team": 2})), "between q1 and q2");
    assert_eq!(text(&mut ann).await, "q2");
    let listed = room.router("presence", json!({"channel": ROOM}));
    assert_eq!(listed, json!({"count": 2, "members": both}));

    room.router("leave", json!({"channel": ROOM, "sessions": [bob_id]}));
    room.publish("q3");
    assert_eq!(ann.recv_json().await, event("leave", &bob_id, "bob", json!({"team": 2})));
    assert_eq!(text(&mut ann).await, "q3");
    room.router("send", json!({"sessions": [bob_id], "data": "nothing before this"}));
    assert_eq!(text(&mut bob).await, "nothing before this", "no q3 nor its own leave");

    // A close is a leave too; the last one empties the channel, once.
    room.join(&bob_id, "bob", json!({"team": 2}));
    assert_eq!(ann.recv_json().await["event"], "join");
    bob.close().await;
    assert_eq!(ann.recv_json().await, event("leave", &bob_id, "bob", json!({"team": 2})));
    ann.close().await;
    let occupancy = room.occupancy(2);
    assert_eq!(occupancy, [("occupied".to_owned(), ann_id.clone()), ("vacated".to_owned(), ann_id)]);
    assert_eq!(room.router("presence", json!({"channel": ROOM})), json!({"count": 0, "members": []}));
}

#[tokio::test]
async fn an_away_member_is_shown_offline_then_online_then_left_once_its_grace_ends() {
    away_then_left(&[]).await;
}

#[tokio::test]
async fn the_same_away_and_back_on_redis() {
    let redis = Redis::start();
    away_then_left(&["--redis", &redis.url()]).await;
}

#[tokio::test]
async fn the_same_away_and_back_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    away_then_left(&["--redis", &cluster.url()]).await;
}

async fn away_then_left(router_args: &[&str]) {
    let room = room(router_args, &["--resume-grace-ms", "1500"]);
    let (mut ann, ann_id, token) = room.client("").await;
    let (mut bob, bob_id, _) = room.client("").await;
    room.join(&ann_id, "ann", json!(null));
    room.join(&bob_id, "bob", json!(null));
    assert_eq!(ann.recv_json().await["event"], "members");
    assert_eq!(ann.recv_json().await["event"], "join");
    assert_eq!(bob.recv_json().await["event"], "members");
    let ann_is = |kind| json!({"fk": "presence", "event": kind, "channel": ROOM, "session": ann_id, "user": "ann"});

    ann.kill();
    assert_eq!(bob.recv_json().await, ann_is("offline"), "a dropped member is shown away");
    let listed = room.router("presence", json!({"channel": ROOM}));
    let ann_listed = listed["members"].as_array().unwrap().iter().find(|m| m["session"] == ann_id.as_str()).cloned();
    assert_eq!(ann_listed.unwrap()["online"], false);

    let mut back = Client::connect(&format!("{}?resume={token}&last=2", room.url)).await;
    assert_eq!(back.recv_json().await["resumed"], true);
    assert_eq!(bob.recv_json().await, ann_is("online"));
    // A member hears of others, not of its own absence and return.
    room.router("publish", json!({"channel": ROOM, "data": "after the return"}));
    assert_eq!(
        back.recv().await.into_text().unwrap().as_str(),
        "after the return",
        "not its own offline or online first"
    );
    assert_eq!(bob.recv().await.into_text().unwrap().as_str(), "after the return");

    back.kill();
    assert_eq!(bob.recv_json().await, ann_is("offline"));
    let started = std::time::Instant::now();
    assert_eq!(bob.recv_json().await, ann_is("leave"), "left once its grace ended");
    assert!(started.elapsed() > Duration::from_millis(1000), "not before the grace: {:?}", started.elapsed());
    let members = room.router("presence", json!({"channel": ROOM}))["members"].clone();
    assert_eq!(members, json!([{"session": bob_id, "user": "bob", "online": true}]));
}

#[tokio::test]
async fn the_member_list_is_right_after_a_router_restart_on_redis() {
    let redis = Redis::start();
    let mut room = room(&["--redis", &redis.url()], &[]);
    let (mut ann, ann_id, _) = room.client("").await;
    let (bob, bob_id, _) = room.client("").await;
    room.join(&ann_id, "ann", json!({"seat": "A1"}));
    room.join(&bob_id, "bob", json!({"seat": "B2"}));
    let before = room.router("presence", json!({"channel": ROOM}));
    assert_eq!(before["count"], 2);
    assert_eq!(ann.recv_json().await["event"], "members");
    assert_eq!(ann.recv_json().await["event"], "join");

    let (port, http_port) = (room.stack.router_port, room.stack.router_http_port);
    room.stack.proc_mut("router").kill();
    let args = ["--listen", &local(port).to_string(), "--http", &local(http_port).to_string(), "--redis", &redis.url()];
    room.stack.procs.push(Proc::project("router", &args, "router-again"));
    wait_for_port(http_port, "router again");
    room.stack.wait_for_gateways(1);
    room.stack.wait_for_clients(2);
    assert_eq!(room.router("presence", json!({"channel": ROOM})), before, "the same members, info and state");

    bob.close().await;
    assert_eq!(ann.recv_json().await, event("leave", &bob_id, "bob", json!({"seat": "B2"})), "through the new router");
    assert_eq!(room.router("presence", json!({"channel": ROOM}))["count"], 1);
}
