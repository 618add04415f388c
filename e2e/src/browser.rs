//! Page scripts in e2e/browser, run with node against real Chromium
//! (headless, driven by playwright-core).

use std::path::Path;
use std::process::Command;

use crate::processes::bin_dir;

/// Runs a page script from e2e/browser with `args` and `env`; its report
/// (stdout and stderr), once it passed.
pub fn run_script(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "run `npm ci` in e2e/browser (the README's test command does)"
    );
    let output = Command::new("node")
        .current_dir(&browser)
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("node");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{script} failed:\n{report}");
    report
}

/// Runs a page script against `url`, checking that it passed and left its
/// screenshot (kept in target/e2e-logs/ as a test artifact).
pub fn run_page_test(script: &str, url: &str, screenshot: &str, env: &[(&str, &str)]) {
    let screenshot = bin_dir().join("../e2e-logs").join(screenshot);
    let _ = std::fs::remove_file(&screenshot);
    run_script(script, &[url, screenshot.to_str().unwrap()], env);
    assert!(screenshot.exists(), "no screenshot");
}
