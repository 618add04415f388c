//! php-fpm, the real one, behind the gateway: over TCP and over a unix
//! socket, a plain PHP script sees the gateway's params and its replies
//! reach the client.

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::processes::php_fpm;
use e2e::processes::{bin_dir, wait_for_port};
use e2e::{free_port, Client, Stack, StackOptions};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/php/params.php")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

async fn php_sees_params_and_replies(backend: String) {
    let stack = Stack::start(StackOptions {
        backend: Some(backend),
        gateway_args: vec!["--param".into(), format!("SCRIPT_FILENAME={}", script())],
        ..Default::default()
    });
    let mut client = Client::connect_with_headers(&stack.ws_url("/room?x=1"), &[("X-Team", "blue")]).await;
    let connected = client.recv_json().await;
    let seen = &connected["connected"];
    let session = seen["SESSIONID"].as_str().unwrap().to_owned();
    assert_eq!(session.len(), 16);
    assert_eq!(
        seen,
        &json!({"SESSIONID": session, "EVENT": "1", "REMOTE_ADDR": "127.0.0.1", "REQUEST_URI": "/room?x=1", "QUERY_STRING": "x=1", "HTTP_X_TEAM": "blue"})
    );
    client.send(Message::text("hello php")).await;
    assert_eq!(client.recv_json().await, json!({"echo": "hello php", "session": session}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_fpm_over_tcp() {
    let dir = bin_dir().join("../e2e-logs/php-tcp");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let _fpm = php_fpm(&format!("127.0.0.1:{port}"), &dir);
    wait_for_port(port, "php-fpm");
    php_sees_params_and_replies(format!("127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_fpm_over_a_unix_socket() {
    let dir = bin_dir().join("../e2e-logs/php-unix");
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("php.sock");
    let _ = std::fs::remove_file(&socket);
    let _fpm = php_fpm(socket.to_str().unwrap(), &dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "php-fpm never opened {}", socket.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    php_sees_params_and_replies(format!("unix:{}", socket.display())).await;
}
