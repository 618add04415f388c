//! The chat page in real Chromium (headless, driven by playwright-core)
//! against the real stack. A screenshot is kept as a test artifact in
//! target/e2e-logs/.

use std::path::Path;
use std::process::Command;

use e2e::processes::bin_dir;
use e2e::{Stack, StackOptions};

#[test]
fn two_browser_pages_chat_on_channel_0_and_2() {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "run `npm ci` in e2e/browser (the README's test command does)"
    );
    let stack = Stack::start(StackOptions::default());
    let screenshot = bin_dir().join("../e2e-logs/chat-page.png");
    let output = Command::new("node")
        .current_dir(&browser)
        .args(["chat.mjs", &stack.ws_url("/").replace("ws://", "http://"), screenshot.to_str().unwrap()])
        .output()
        .expect("node");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the page test failed:\n{report}");
    assert!(screenshot.exists(), "no screenshot");
}
