//! The Debian package, as a sysadmin installs it: ./test.sh builds it
//! (cargo-deb) and installs it with `dpkg -i`; this checks what it put in
//! place and runs the installed `fk all --config /etc/fk/fk.toml` against
//! php-fpm on the socket that file names, with a WebSocket client. Fixed
//! ports (the file's), so this is a test binary of its own.

use std::path::Path;

use e2e::processes::{bin_dir, wait_for_port};
use e2e::{Client, Proc};
use tokio_tungstenite::tungstenite::Message;

const INSTALLED: &str = "/usr/bin/fk";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_package_serves_a_websocket_echo_to_php() {
    assert!(Path::new(INSTALLED).exists(), "the package is not installed: ./test.sh builds and installs it");
    for file in [
        "/etc/fk/fk.toml",
        "/lib/systemd/system/fk.service",
        "/lib/systemd/system/fk-gateway.service",
        "/lib/systemd/system/fk-router.service",
        "/usr/share/fk/examples/echo.php",
        "/usr/share/fk/php-fpm-pool.conf",
    ] {
        assert!(Path::new(file).exists(), "{file} not installed");
    }
    let status = std::process::Command::new("dpkg").args(["-s", "fk"]).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("Status: install ok installed"));

    // php-fpm on the socket /etc/fk/fk.toml names, running the package's echo.
    let dir = bin_dir().join("../e2e-logs/deb-php");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all("/run/php").unwrap();
    let _ = std::fs::remove_file("/run/php/fk.sock");
    let conf = dir.join("fpm.conf");
    let pool = std::fs::read_to_string("/usr/share/fk/php-fpm-pool.conf").unwrap();
    let pool = pool.replace("user = www-data", "user = root").replace("group = www-data", "group = root");
    std::fs::write(&conf, format!("[global]\nerror_log = {}\ndaemonize = no\n{pool}", dir.join("fpm.log").display()))
        .unwrap();
    let _fpm = Proc::spawn(e2e::processes::php_fpm_binary(), &["-y", conf.to_str().unwrap(), "-F", "-R"], "php-fpm")
        .stopped_by("TERM");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !Path::new("/run/php/fk.sock").exists() {
        assert!(std::time::Instant::now() < deadline, "php-fpm never opened /run/php/fk.sock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let _node = Proc::spawn(INSTALLED, &["all", "--config", "/etc/fk/fk.toml"], "fk-installed").stopped_by("TERM");
    wait_for_port(9005, "the installed gateway");
    e2e::processes::wait_for_gateways_on(9011, 1);
    let mut client = Client::connect("ws://127.0.0.1:9005/").await;
    client.send(Message::text("hello from the package")).await;
    assert_eq!(client.recv().await, Message::text("hello from the package"));
}
