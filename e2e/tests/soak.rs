//! A short soak, as CI runs it: the load tool drives echo traffic (with
//! reconnects) and a channel fan-out through two gateways at once, and
//! must finish with no message lost, repeated or reordered. The same holds
//! for members that keep dropping and resuming on the other gateway.

use std::process::Command;

use e2e::processes::{bin_dir, local, wait_for_port};
use e2e::{free_port, Proc, Stack};
use serde_json::Value;

/// Runs the load tool with `--json`; returns its exit success and report.
fn loadgen(args: &[&str]) -> (bool, Value) {
    let output = Command::new(bin_dir().join("loadgen")).arg("--json").args(args).output().expect("run loadgen");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no JSON report: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.success(), report)
}

/// Router, an echo backend run with `echo_flags` and two gateways of one
/// cluster (a session resumes on either).
fn echo_stack(echo_flags: &[&str]) -> (Stack, String, String) {
    let (stack, mut gateways) = e2e::cluster(&[], 2, &[], echo_flags);
    let b = gateways.pop().unwrap().url;
    (stack, gateways.pop().unwrap().url, b)
}

#[test]
fn soak_with_reconnects_and_fanout_loses_nothing() {
    let (stack, a, b) = echo_stack(&["--greet"]);
    let router = local(stack.router_http_port).to_string();
    let (ok, report) = loadgen(&[
        "--url",
        &a,
        "--url",
        &b,
        "soak",
        "--router",
        &router,
        "--duration",
        "12",
        "--echo-connections",
        "40",
        "--reconnect-every",
        "100",
        "--members",
        "300",
        "--publish-interval-ms",
        "40",
    ]);
    assert!(ok && report["ok"] == true, "{report:#}");
    let figures = &report["figures"];
    let (members, messages) =
        (figures["fanout_members"].as_u64().unwrap(), figures["fanout_messages"].as_u64().unwrap());
    assert_eq!(members, 300, "{report:#}");
    assert!(messages > 100, "{report:#}");
    assert_eq!(figures["fanout_deliveries"].as_u64(), Some(members * messages), "every member got every message");
    assert!(figures["echo_round_trips"].as_u64().unwrap() > 1000, "{report:#}");
    assert!(figures["echo_reconnects"].as_u64().unwrap() > 10, "connections churned: {report:#}");
}

#[test]
fn pipelined_echo_keeps_order() {
    let (_stack, a, b) = echo_stack(&["--greet"]);
    let (ok, report) =
        loadgen(&["--url", &a, "--url", &b, "echo", "-c", "50", "-d", "3", "--pipeline", "8", "--greeted"]);
    assert!(ok && report["ok"] == true, "{report:#}");
    assert!(report["figures"]["round_trips"].as_u64().unwrap() > 1000, "{report:#}");
}

#[test]
fn members_that_drop_and_resume_on_the_other_gateway_miss_nothing() {
    let (stack, a, b) = echo_stack(&[]);
    let router = local(stack.router_http_port).to_string();
    let churn =
        ["churn", "--router", &router, "-d", "8", "-c", "100", "--drops-per-second", "50", "--offline-ms", "20"];
    let (ok, report) = loadgen(&[&["--url", &a, "--url", &b][..], &churn].concat());
    assert!(ok && report["ok"] == true, "{report:#}");
    let figures = &report["figures"];
    let messages = figures["messages"].as_u64().unwrap();
    assert!(messages > 200, "{report:#}");
    assert_eq!(figures["deliveries"].as_u64(), Some(100 * messages), "every member got every message");
    assert_eq!(figures["lost"].as_u64(), Some(0));
    assert!(figures["resumes"].as_u64().unwrap() > 150, "members kept resuming: {report:#}");
}

/// The same with two routers on one Redis, while the one that carries the
/// publishes is paused (SIGSTOP) for 3 s, twice. Resumes go on through the
/// other, so sessions keep moving; each move waits for the paused router's
/// MOVED instead of going ahead without it, so no publish it routed to the
/// old gateway before the move is dropped there.
#[test]
fn members_that_resume_while_a_router_pauses_miss_nothing() {
    let redis = e2e::Redis::start();
    let mut procs = Vec::new();
    let mut routers = Vec::new();
    for name in ["router-0", "router-1"] {
        let (port, http) = (free_port(), free_port());
        let (listen, http_addr) = (local(port).to_string(), local(http).to_string());
        procs.push(Proc::project(
            "router",
            &["--listen", &listen, "--http", &http_addr, "--redis", &redis.url()],
            name,
        ));
        wait_for_port(port, name);
        routers.push((listen, http));
    }
    let echo_addr = local(free_port()).to_string();
    procs.push(Proc::project("echo-app", &["--listen", &echo_addr], "echo"));
    let mut urls = Vec::new();
    for name in ["gateway-a", "gateway-b"] {
        let port = free_port();
        let listen = local(port).to_string();
        let args = ["--listen", &listen, "--backend", &echo_addr, "--resume-secret", "soak"];
        let links = ["--router", &routers[0].0, "--router", &routers[1].0];
        procs.push(Proc::project("gateway", &[&args[..], &links].concat(), name));
        wait_for_port(port, name);
        urls.push(format!("ws://{listen}/"));
    }
    let publishing = Stack {
        token: None,
        gateway_port: 0,
        router_port: 0,
        router_http_port: routers[1].1,
        app_port: 0,
        procs: Vec::new(),
    };
    publishing.wait_for_gateways(2);
    let router = local(routers[1].1).to_string();
    let churn = std::thread::spawn(move || {
        let args =
            ["churn", "--router", &router, "-d", "10", "-c", "60", "--drops-per-second", "30", "--offline-ms", "20"];
        loadgen(&[&["--url", &urls[0], "--url", &urls[1]][..], &args].concat())
    });
    for _ in 0..2 {
        std::thread::sleep(std::time::Duration::from_millis(2500));
        procs[1].signal("STOP");
        std::thread::sleep(std::time::Duration::from_secs(3));
        procs[1].signal("CONT");
    }
    let (ok, report) = churn.join().unwrap();
    assert!(ok && report["ok"] == true, "{report:#}");
    let figures = &report["figures"];
    assert_eq!(figures["lost"].as_u64(), Some(0), "{report:#}");
    assert_eq!(figures["deliveries"].as_u64(), Some(60 * figures["messages"].as_u64().unwrap()));
    assert!(figures["resumes"].as_u64().unwrap() > 100, "members kept resuming: {report:#}");
}
