//! The one binary, `fk`: its subcommands, and `fk all` running a single
//! node (router and gateway in one process) from one file, serving a
//! WebSocket echo to a PHP script under php-fpm.

use std::path::Path;

use e2e::processes::{bin_dir, free_port, local, wait_for_port};
use e2e::{Client, Proc};
use tokio_tungstenite::tungstenite::Message;

#[test]
fn fk_help_lists_the_parts() {
    let output = std::process::Command::new(bin_dir().join("fk")).arg("--help").output().expect("fk is built");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    for part in ["gateway", "router", "chat-app", "all"] {
        assert!(help.lines().any(|line| line.trim_start().starts_with(part)), "{part} missing from:\n{help}");
    }
    let gateway = std::process::Command::new(bin_dir().join("fk")).args(["gateway", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&gateway.stdout).contains("--backend"), "fk gateway --help is the gateway's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fk_all_serves_a_websocket_echo_to_php_from_one_file() {
    let (_fpm, fpm_addr, dir) = e2e::processes::php_fpm_ondemand_on_a_port("fk-all", 2);
    let echo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/php/echo.php").canonicalize().unwrap();
    let (router, http, gateway) = (local(free_port()), local(free_port()), local(free_port()));
    let config = dir.join("fk.toml");
    std::fs::write(
        &config,
        format!(
            "[router]\nlisten = \"{router}\"\nhttp = \"{http}\"\n\n[gateway]\nlisten = \"{gateway}\"\nbackend = [\"{fpm_addr},keep_conn=off\"]\nparam = [\"SCRIPT_FILENAME={}\"]\n",
            echo.display()
        ),
    )
    .unwrap();
    let _node = Proc::project("fk", &["all", "--config", config.to_str().unwrap()], "fk-all");
    wait_for_port(gateway.port(), "fk all's gateway");
    e2e::processes::wait_for_gateways_on(http.port(), 1);
    let mut client = Client::connect(&format!("ws://{gateway}/")).await;
    client.send(Message::text("hello php")).await;
    assert_eq!(client.recv().await, Message::text("hello php"));
}
