//! Session resume: a client whose connection drops comes back, on the same
//! or another gateway, to its session, its channels and the messages sent
//! meanwhile; real gateways, a router on a real Redis, an echo backend
//! that logs the events it sees.

use std::time::Duration;

use e2e::processes::ClusterGateway;
use e2e::{backend_events, http, metric, scratch_file, Client, Redis, RedisCluster, Stack};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The Redis a cluster's router runs on.
enum Store {
    One(Redis),
    Cluster(RedisCluster),
}

impl Store {
    fn url(&self) -> String {
        match self {
            Store::One(redis) => redis.url(),
            Store::Cluster(cluster) => cluster.url(),
        }
    }
}

struct Cluster {
    _store: Store,
    stack: Stack,
    log: std::path::PathBuf,
    gateways: Vec<ClusterGateway>,
}

/// Redis, a router on it, the echo backend logging its events, and two
/// gateways of one cluster, run with `gateway_args` too.
fn cluster(gateway_args: &[&str]) -> Cluster {
    cluster_on(Store::One(Redis::start()), gateway_args)
}

fn cluster_on(store: Store, gateway_args: &[&str]) -> Cluster {
    let log = scratch_file("echo-events.jsonl");
    let (stack, gateways) =
        e2e::cluster(&["--redis", &store.url()], 2, gateway_args, &["--log", log.to_str().unwrap()]);
    Cluster { _store: store, stack, log, gateways }
}

impl Cluster {
    fn url(&self, gateway: usize, query: &str) -> String {
        format!("{}?{query}", self.gateways[gateway].url)
    }

    fn router(&self, command: &str, body: Value) -> Value {
        let (status, reply) = http::post(self.stack.router_http_port, &format!("/v1/{command}"), body);
        assert_eq!(status, 200, "{command}: {reply}");
        reply
    }

    fn publish(&self, text: &str) {
        self.router("publish", json!({"channel": "room", "data": text}));
    }

    /// The channel's members, once they are `expected` (a session's end
    /// reaches the router just after its close event).
    fn members_are(&self, expected: Value) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let members = self.router("members", json!({"channel": "room"}))["sessions"].clone();
            if members == expected {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "members {members}, expected {expected}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The events the backend saw for `session`, once there are `n`.
    fn events_of(&self, session: &str, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let events: Vec<String> = backend_events(&self.log, 0)
                .iter()
                .filter(|e| e["params"]["SESSIONID"] == session)
                .map(|e| e["event"].as_str().unwrap().to_owned())
                .collect();
            if events.len() >= n {
                return events;
            }
            assert!(std::time::Instant::now() < deadline, "backend saw only {events:?} of {session}, wanted {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A resumable client on gateway `gateway` that joined "room"; returns
    /// it with its session id and resume token.
    async fn member(&self, gateway: usize) -> (Client, String, String) {
        let mut client = Client::connect(&self.url(gateway, "resume=1")).await;
        let hello = client.recv_json().await;
        assert_eq!((hello["type"].as_str(), hello["resumed"].as_bool()), (Some("session"), Some(false)));
        let id = hello["id"].as_str().unwrap().to_owned();
        // The gateway reports the session on its own link: pushes find it
        // once the router has that report.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.router("online", json!({"sessions": [id]}))["sessions"] != json!([id]) {
            assert!(std::time::Instant::now() < deadline, "the router never heard of {id}");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.router("join", json!({"channel": "room", "sessions": [id]}));
        (client, id, hello["resume"].as_str().unwrap().to_owned())
    }
}

async fn text(client: &mut Client) -> String {
    match client.recv().await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// The close code a connection to `url` is refused with.
async fn refused_with(url: &str) -> u16 {
    let mut client = Client::connect(url).await;
    let frame = client.expect_close().await.expect("a close frame with a code");
    frame.code.into()
}

#[tokio::test]
async fn a_dropped_client_resumes_on_another_gateway_with_what_it_missed() {
    resumes_on_another_gateway(cluster(&[])).await;
}

#[tokio::test]
async fn the_same_on_a_redis_cluster() {
    resumes_on_another_gateway(cluster_on(Store::Cluster(RedisCluster::start()), &[])).await;
}

async fn resumes_on_another_gateway(cluster: Cluster) {
    let (mut client, id, token) = cluster.member(0).await;
    cluster.publish("before");
    assert_eq!(text(&mut client).await, "before");

    client.kill();
    assert_eq!(cluster.events_of(&id, 2), ["connect", "offline"]);
    cluster.members_are(json!([id]));
    for i in 1..=5 {
        cluster.publish(&format!("missed {i}"));
    }

    let mut back = Client::connect(&cluster.url(1, &format!("resume={token}&last=1"))).await;
    let hello = back.recv_json().await;
    assert_eq!((hello["type"].as_str(), hello["id"].as_str()), (Some("session"), Some(id.as_str())));
    assert_eq!(hello["resumed"], json!(true));
    assert_ne!(hello["resume"].as_str(), Some(token.as_str()), "a fresh token for the next resume");
    for i in 1..=5 {
        assert_eq!(text(&mut back).await, format!("missed {i}"));
    }
    cluster.publish("live");
    assert_eq!(text(&mut back).await, "live", "nothing twice before it");
    assert_eq!(cluster.events_of(&id, 3), ["connect", "offline", "online"]);
    let online = backend_events(&cluster.log, 0).into_iter().rfind(|e| e["params"]["SESSIONID"] == id.as_str());
    assert_eq!(online.unwrap()["params"]["REMOTE_PORT"], json!(back.local_port().to_string()));
    assert_eq!(metric(cluster.gateways[1].admin, "gateway_sessions_resumed_total"), 1.0);
    assert_eq!(metric(cluster.gateways[0].admin, "gateway_sessions_moved_out_total"), 1.0);
    assert_eq!(metric(cluster.gateways[0].admin, "gateway_sessions"), 0.0, "the old gateway let go of it");

    // Its messages still reach the backend, under the same session.
    back.send(Message::text("still me")).await;
    assert_eq!(text(&mut back).await, "still me");
    assert_eq!(cluster.events_of(&id, 4), ["connect", "offline", "online", "message"]);
    cluster.members_are(json!([id]));
}

#[tokio::test]
async fn a_client_that_sent_no_close_misses_nothing_that_was_written_to_it() {
    // The client tells how much it got (`last`); what the gateway wrote
    // after that comes again, whether or not the dead socket took it.
    let cluster = cluster(&[]);
    let (mut client, id, token) = cluster.member(0).await;
    for i in 1..=3 {
        cluster.publish(&format!("m{i}"));
    }
    assert_eq!(text(&mut client).await, "m1");
    client.kill();
    cluster.events_of(&id, 2);
    let mut back = Client::connect(&cluster.url(0, &format!("resume={token}&last=1"))).await;
    assert_eq!(back.recv_json().await["resumed"], json!(true));
    assert_eq!([text(&mut back).await, text(&mut back).await], ["m2", "m3"]);
    cluster.publish("m4");
    assert_eq!(text(&mut back).await, "m4", "nothing twice before it");
}

#[tokio::test]
async fn without_a_resume_in_the_grace_period_the_session_closes_and_leaves_its_channels() {
    let cluster = cluster(&["--resume-grace-ms", "1000"]);
    let (client, id, token) = cluster.member(0).await;
    client.kill();
    assert_eq!(cluster.events_of(&id, 3), ["connect", "offline", "close"]);
    cluster.members_are(json!([]));
    assert_eq!(cluster.events_of(&id, 3).len(), 3, "one close event");
    cluster.members_are(json!([]));
    assert_eq!(metric(cluster.gateways[0].admin, "gateway_client_closes_total{reason=\"grace_expired\"}"), 1.0);
    assert_eq!(refused_with(&cluster.url(1, &format!("resume={token}"))).await, 4101, "expired token");
}

#[tokio::test]
async fn past_the_resume_buffer_the_session_closes_instead_of_resuming() {
    let cluster = cluster(&["--resume-buffer-messages", "3"]);
    let (client, id, token) = cluster.member(0).await;
    client.kill();
    cluster.events_of(&id, 2);
    for i in 1..=4 {
        cluster.publish(&format!("m{i}"));
    }
    assert_eq!(cluster.events_of(&id, 3), ["connect", "offline", "close"]);
    cluster.members_are(json!([]));
    assert_eq!(metric(cluster.gateways[0].admin, "gateway_client_closes_total{reason=\"resume_buffer_full\"}"), 1.0);
    assert_eq!(refused_with(&cluster.url(0, &format!("resume={token}"))).await, 4101);
}

#[tokio::test]
async fn forged_and_reused_tokens_are_refused_and_create_no_session() {
    let cluster = cluster(&[]);
    let (client, id, token) = cluster.member(0).await;

    let forged = format!("{id}.0.{}", "0".repeat(64));
    assert_eq!(refused_with(&cluster.url(1, &format!("resume={forged}"))).await, 4100);
    let other_id = format!("{}.0.{}", "00000000000000ff", token.rsplit('.').next().unwrap());
    assert_eq!(refused_with(&cluster.url(0, &format!("resume={other_id}"))).await, 4100, "another session's MAC");
    assert_eq!(refused_with(&cluster.url(0, "resume=nonsense")).await, 4100);

    // A resume while the old connection still looks open takes it over.
    let mut old = client;
    let mut back = Client::connect(&cluster.url(1, &format!("resume={token}"))).await;
    let hello = back.recv_json().await;
    assert_eq!(hello["id"].as_str(), Some(id.as_str()));
    assert_eq!(u16::from(old.expect_close().await.unwrap().code), 4105, "resumed elsewhere");

    assert_eq!(refused_with(&cluster.url(0, &format!("resume={token}"))).await, 4102, "used once already");
    assert_eq!(refused_with(&cluster.url(1, &format!("resume={token}"))).await, 4102);
    cluster.publish("after the refusals");
    assert_eq!(text(&mut back).await, "after the refusals", "the session lives on");

    // Only the one session, as the backend and the gateways count them.
    let sessions: std::collections::BTreeSet<String> =
        backend_events(&cluster.log, 0).iter().map(|e| e["params"]["SESSIONID"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sessions.into_iter().collect::<Vec<_>>(), [id.as_str()]);
    let total: f64 = cluster.gateways.iter().map(|gateway| metric(gateway.admin, "gateway_sessions")).sum();
    assert_eq!(total, 1.0);
    assert_eq!(cluster.events_of(&id, 3), ["connect", "offline", "online"]);
}

#[tokio::test]
async fn a_clean_close_ends_the_session_at_once() {
    let cluster = cluster(&[]);
    let (client, id, token) = cluster.member(0).await;
    client.close().await;
    assert_eq!(cluster.events_of(&id, 2), ["connect", "close"]);
    cluster.members_are(json!([]));
    assert_eq!(refused_with(&cluster.url(0, &format!("resume={token}"))).await, 4101);
}

#[tokio::test]
async fn a_silent_client_past_the_idle_timeout_can_resume() {
    let cluster = cluster(&["--ping-interval-ms", "100", "--idle-timeout-ms", "400"]);
    let (client, id, token) = cluster.member(0).await;
    // Not reading, the client answers no ping: to the gateway it went silent.
    assert_eq!(cluster.events_of(&id, 2), ["connect", "offline"]);
    cluster.publish("while silent");
    let mut back = Client::connect(&cluster.url(1, &format!("resume={token}&last=0"))).await;
    assert_eq!(back.recv_json().await["resumed"], json!(true));
    assert_eq!(text(&mut back).await, "while silent");
    assert_eq!(cluster.events_of(&id, 3), ["connect", "offline", "online"]);
    drop(client);
}
