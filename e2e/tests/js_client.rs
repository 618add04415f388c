//! clients/js/fk.js under `node --test`, against real gateways: two of one
//! cluster (a resume moves between them) and one whose sessions wait only
//! 300 ms for their client (an expired session), the router (keeping the
//! history of `news-*` channels, in envelopes) and the echo backend.

use std::path::Path;
use std::process::Command;

use e2e::processes::{cluster, local, wait_for_port};
use e2e::{free_port, Proc};

#[test]
fn the_js_client_passes_its_node_tests_against_real_gateways() {
    let history = ["--history", "news-=5", "--history-envelope", "news-"];
    let (mut stack, gateways) = cluster(&history, 2, &["--client-subscribe", "true"], &[]);
    let short = free_port();
    let (listen, backend, router) =
        (local(short).to_string(), local(stack.app_port).to_string(), local(stack.router_port).to_string());
    let args = ["--listen", &listen, "--backend", &backend, "--router", &router, "--resume-grace-ms", "300"];
    stack.procs.push(Proc::project("gateway", &args, "gateway-short"));
    wait_for_port(short, "gateway");
    stack.wait_for_gateways(3);

    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js");
    // Node 22 has WebSocket built in; Node 20 needs the flag.
    let built_in = Command::new("node").args(["-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"]).status();
    let flag =
        if built_in.expect("node is installed").success() { "--no-warnings" } else { "--experimental-websocket" };
    let output = Command::new("node")
        .current_dir(&clients)
        .args([flag, "--test", "--test-timeout", "30000", "--test-reporter", "spec", "test/fk.test.mjs"])
        .env("FK_A", &gateways[0].url)
        .env("FK_B", &gateways[1].url)
        .env("FK_SHORT", format!("ws://{listen}/"))
        .env("ROUTER_HTTP", format!("http://127.0.0.1:{}", stack.router_http_port))
        .output()
        .expect("node is installed (the README's test command installs it)");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "node --test failed:\n{report}");
    assert!(report.contains("pass 14") && report.contains("fail 0"), "{report}");
}
