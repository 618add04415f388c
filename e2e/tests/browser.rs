//! The example pages in real Chromium (headless, driven by playwright-core)
//! against the real stack. Screenshots are kept as test artifacts in
//! target/e2e-logs/.

use e2e::browser::run_page_test;
use e2e::{Stack, StackOptions};

fn page_url(stack: &Stack, path: &str) -> String {
    stack.ws_url(path).replace("ws://", "http://")
}

#[test]
fn two_browser_pages_chat_on_channel_0_and_2() {
    let stack = Stack::start(StackOptions::default());
    run_page_test("chat.mjs", &page_url(&stack, "/"), "chat-page.png", &[]);
}

/// The same chat with `window.WebSocket` gone, as in a browser that has
/// none or behind a proxy that strips Upgrade: fk.js falls back to SSE.
#[test]
fn two_browser_pages_without_websocket_chat_over_sse_and_see_a_leave() {
    let stack = Stack::start(StackOptions::default());
    run_page_test("chat.mjs", &page_url(&stack, "/"), "chat-page-sse.png", &[("NO_WEBSOCKET", "1")]);
}

#[test]
fn the_queue_page_lets_the_second_player_in_when_the_first_goes_offline() {
    let stack = Stack::start(StackOptions {
        gateway_args: vec!["--http-route".into(), "/api/".into()],
        app_args: vec!["--queue-capacity".into(), "1".into(), "--operator-token".into(), "op".into()],
        ..Default::default()
    });
    run_page_test("queue.mjs", &page_url(&stack, "/queue"), "queue-page.png", &[("OPERATOR_TOKEN", "op")]);
}

#[test]
fn the_chat_page_resumes_its_session_after_a_network_drop() {
    let stack = Stack::start(StackOptions::default());
    run_page_test("resume.mjs", &page_url(&stack, "/"), "chat-page-resumed.png", &[]);
}

/// The router's operator page (`/admin/`) with its token: the right
/// session counts, a killed backend shown ejected within seconds, a session
/// kicked from the page (its client closed with 4000), nothing loaded from
/// elsewhere. The screenshot is docs/operations.png's source.
#[test]
fn the_operator_page_shows_the_cluster_a_dead_backend_and_kicks_a_session() {
    let (stack, gateways) = e2e::cluster(&["--admin-token", "operator-secret"], 2, &[], &["--greet"]);
    let url = format!("http://127.0.0.1:{}/admin/", stack.router_http_port);
    let urls = format!("{} {}", gateways[0].url, gateways[1].url);
    let echo = stack.proc("echo").pid().to_string();
    let router = format!("http://127.0.0.1:{}", stack.router_http_port);
    let env = [
        ("ADMIN_TOKEN", "operator-secret"),
        ("ECHO_PID", echo.as_str()),
        ("GATEWAYS", urls.as_str()),
        ("ROUTER_HTTP", router.as_str()),
    ];
    run_page_test("admin.mjs", &url, "operator-page.png", &env);
}
