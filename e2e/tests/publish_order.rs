//! Publishes reach every member in the order the router accepted them,
//! also on Redis, where reading a large channel's members takes longer
//! than a silent connection may hold the line: fooking's PHP client opens
//! one connection per call, each finished before the next begins.

use e2e::{echo_backend_with, fooking, http, scratch_file, Client, Redis, Stack, StackOptions};
use serde_json::json;

const MEMBERS: usize = 2000;
const PUBLISHES: usize = 20;

/// 2,000 members on Redis, 20 publishes on 20 connections in a row: every
/// member gets 0..19 in order. (Before, a publish whose connection's turn
/// took over 100 ms was overtaken: most members got them out of order.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_publishes_on_redis_arrive_in_order() {
    let redis = Redis::start();
    let log = scratch_file("events.jsonl");
    let (_echo, echo_addr) = echo_backend_with(&log, &["--greet"], "echo");
    let gateway_args = vec!["--max-connect-rate-per-ip".to_owned(), "0".to_owned()];
    let stack = Stack::start(StackOptions {
        redis: Some(redis.url()),
        backend: Some(echo_addr),
        gateway_args,
        ..Default::default()
    });
    let mut members = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..MEMBERS / 100 {
        let batch = futures_util::future::join_all((0..100).map(|_| async {
            let mut client = Client::connect(&stack.ws_url("/")).await;
            let id = client.recv().await.into_text().unwrap().to_string();
            (client, id)
        }))
        .await;
        for (client, id) in batch {
            members.push(client);
            ids.push(id);
        }
    }
    for chunk in ids.chunks(500) {
        let (status, _) = http::post(stack.router_http_port, "/v1/join", json!({"channel": "big", "sessions": chunk}));
        assert_eq!(status, 200);
    }
    let (_, count) = http::post(stack.router_http_port, "/v1/count", json!({"channel": "big"}));
    assert_eq!(count["count"], MEMBERS);
    for n in 0..PUBLISHES {
        fooking::call(stack.router_port, &fooking::frame(fooking::CH_PUB, b"big", format!("{n}").as_bytes(), false));
    }
    let received = futures_util::future::join_all(members.iter_mut().map(|client| async {
        let mut got = Vec::new();
        for _ in 0..PUBLISHES {
            got.push(client.recv().await.into_text().unwrap().parse::<usize>().unwrap());
        }
        got
    }))
    .await;
    let in_order: Vec<usize> = (0..PUBLISHES).collect();
    let out_of_order = received.iter().filter(|got| **got != in_order).count();
    assert_eq!(
        out_of_order,
        0,
        "members that got the publishes out of order, e.g. {:?}",
        received.iter().find(|got| **got != in_order)
    );
}
