//! Publishes reach every member in the order the router accepted them,
//! also on Redis, where reading a large channel's members takes longer
//! than a silent connection may hold the line: fooking's PHP client opens
//! one connection per call, each finished before the next begins.

use std::time::Duration;

use e2e::processes::{local, wait_for_port};
use e2e::{
    echo_backend_with, eventually, fooking, free_port, http, scratch_file, Client, Proc, Redis, Stack, StackOptions,
};
use serde_json::json;

const MEMBERS: usize = 2000;
const PUBLISHES: usize = 20;

/// `MEMBERS` clients of the stack's gateway, with their session ids.
async fn connect_members(stack: &Stack) -> (Vec<Client>, Vec<String>) {
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
    (members, ids)
}

/// What each member received: `PUBLISHES` numbers, in arrival order.
async fn receive_all(members: &mut [Client]) -> Vec<Vec<usize>> {
    futures_util::future::join_all(members.iter_mut().map(|client| async {
        let mut got = Vec::new();
        for _ in 0..PUBLISHES {
            got.push(client.recv().await.into_text().unwrap().parse::<usize>().unwrap());
        }
        got
    }))
    .await
}

fn echo_stack_on(redis: &Redis, more_gateway_args: &[String]) -> Stack {
    let log = scratch_file("events.jsonl");
    let (echo, echo_addr) = echo_backend_with(&log, &["--greet"], "echo");
    let mut gateway_args = vec!["--max-connect-rate-per-ip".to_owned(), "0".to_owned()];
    gateway_args.extend_from_slice(more_gateway_args);
    let mut stack = Stack::start(StackOptions {
        redis: Some(redis.url()),
        backend: Some(echo_addr),
        gateway_args,
        ..Default::default()
    });
    stack.procs.push(echo);
    stack
}

/// 2,000 members on Redis, 20 publishes on 20 connections in a row: every
/// member gets 0..19 in order. (Before, a publish whose connection's turn
/// took over 100 ms was overtaken: most members got them out of order.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_publishes_on_redis_arrive_in_order() {
    let redis = Redis::start();
    let stack = echo_stack_on(&redis, &[]);
    let (mut members, ids) = connect_members(&stack).await;
    for chunk in ids.chunks(500) {
        let (status, _) = http::post(stack.router_http_port, "/v1/join", json!({"channel": "big", "sessions": chunk}));
        assert_eq!(status, 200);
    }
    let (_, count) = http::post(stack.router_http_port, "/v1/count", json!({"channel": "big"}));
    assert_eq!(count["count"], MEMBERS);
    for n in 0..PUBLISHES {
        fooking::call(stack.router_port, &fooking::frame(fooking::CH_PUB, b"big", format!("{n}").as_bytes(), false));
    }
    let received = receive_all(&mut members).await;
    let in_order: Vec<usize> = (0..PUBLISHES).collect();
    let out_of_order = received.iter().filter(|got| **got != in_order).count();
    assert_eq!(
        out_of_order,
        0,
        "members that got the publishes out of order, e.g. {:?}",
        received.iter().find(|got| **got != in_order)
    );
}

/// Two routers on one Redis, the gateway linked to both. The members join
/// through one, and the publishes alternate between the two, one
/// connection per call: every member gets all 20, and each router's in
/// the order that router took them (PROTOCOL.md: order is per router).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_routers_each_routers_publishes_arrive_in_its_order() {
    let redis = Redis::start();
    let (b_port, b_http) = (free_port(), free_port());
    let b_args =
        ["--listen", &local(b_port).to_string(), "--http", &local(b_http).to_string(), "--redis", &redis.url()]
            .map(str::to_owned);
    let _router_b = Proc::project("router", &b_args, "router-b");
    wait_for_port(b_port, "router-b");
    let stack = echo_stack_on(&redis, &["--router".to_owned(), local(b_port).to_string()]);
    let b_linked = eventually(Duration::from_secs(15), || {
        let info = http::request(b_http, "GET", "/v1/info", "").map(|(_, body)| body).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&info)
            .is_ok_and(|info| info["gateways"].as_array().map(Vec::len) == Some(1))
    });
    assert!(b_linked.await, "router b never saw the gateway");
    let (mut members, ids) = connect_members(&stack).await;
    for chunk in ids.chunks(500) {
        let (status, _) = http::post(stack.router_http_port, "/v1/join", json!({"channel": "big", "sessions": chunk}));
        assert_eq!(status, 200);
    }
    let ports = [stack.router_port, b_port];
    for n in 0..PUBLISHES {
        fooking::call(ports[n % 2], &fooking::frame(fooking::CH_PUB, b"big", format!("{n}").as_bytes(), false));
    }
    let received = receive_all(&mut members).await;
    let each_routers_order = |got: &Vec<usize>| {
        let mut sorted = got.clone();
        sorted.sort();
        let ordered = |router: usize| got.iter().filter(|n| *n % 2 == router).is_sorted();
        sorted == (0..PUBLISHES).collect::<Vec<_>>() && ordered(0) && ordered(1)
    };
    let broken: Vec<&Vec<usize>> = received.iter().filter(|got| !each_routers_order(got)).collect();
    assert!(broken.is_empty(), "{} members broke a router's order or missed one, e.g. {:?}", broken.len(), broken[0]);
}
