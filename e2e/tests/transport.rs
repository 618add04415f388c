//! The client transport as clients meet it: permessage-deflate negotiated
//! or not, and wss:// and length-framed TCP over TLS with a certificate
//! reloaded under live connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use e2e::processes::{local, wait_for_port};
use e2e::raw_ws::{self, deflate, recv_message, TEXT};
use e2e::{backend_events, echo_stack, eventually, free_port, metric, scratch_file};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const AGREED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// About 1 KB of JSON, as a chat or game update would be.
fn update() -> String {
    json!({"type": "state", "players": (0..24).map(|i| json!({"id": i, "name": format!("player-{i}"), "x": i * 7}))
        .collect::<Vec<_>>()})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_negotiates_deflate_gets_compressed_frames_and_one_that_does_not_gets_plain_ones() {
    let admin = free_port();
    let (stack, _echo, log) = echo_stack(&["--admin", &local(admin).to_string()], &[]);
    let mut deflating = raw_ws::connect(stack.gateway_port, "permessage-deflate; client_max_window_bits").await;
    assert_eq!(deflating.extensions(), Some(AGREED));
    let mut plain = raw_ws::connect(stack.gateway_port, "").await;
    assert_eq!(plain.extensions(), None);

    // A compressed message reaches the backend inflated; its reply comes back compressed.
    let update = update();
    deflating.send_frame(TEXT, true, true, &deflate(update.as_bytes())).await.unwrap();
    let echoed = recv_message(&mut deflating).await;
    assert!(echoed.compressed && echoed.opcode == TEXT && echoed.fin);
    assert!(echoed.payload.len() < update.len() / 2, "{} of {} bytes", echoed.payload.len(), update.len());
    assert_eq!(&echoed.message().unwrap()[..], update.as_bytes());
    let events = backend_events(&log, 3);
    assert!(events.iter().any(|e| e["body"] == json!(update)), "the backend saw the plain message: {events:?}");

    // Under --deflate-min-bytes (128), messages go as they are.
    deflating.send_frame(TEXT, true, false, b"short").await.unwrap();
    let short = recv_message(&mut deflating).await;
    assert!(!short.compressed);
    assert_eq!(&short.payload[..], b"short");

    // One broadcast: compressed for the client that asked, plain for the other.
    let (status, _) = e2e::http::post(stack.router_http_port, "/v1/broadcast", json!({"data": update}));
    assert_eq!(status, 200);
    let to_deflating = recv_message(&mut deflating).await;
    assert!(to_deflating.compressed);
    assert_eq!(&to_deflating.message().unwrap()[..], update.as_bytes());
    let to_plain = recv_message(&mut plain).await;
    assert!(!to_plain.compressed && to_plain.opcode == TEXT);
    assert_eq!(&to_plain.payload[..], update.as_bytes());
    assert_eq!(metric(admin, "gateway_pushes_out_total"), 2.0, "one push queued per client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_deflate_off_it_is_never_agreed_and_a_compressed_frame_is_a_protocol_error() {
    let (stack, _echo, _log) = echo_stack(&["--deflate", "false"], &[]);
    let mut client = raw_ws::connect(stack.gateway_port, "permessage-deflate").await;
    assert_eq!(client.extensions(), None);
    client.send_frame(TEXT, true, true, &deflate(update().as_bytes())).await.unwrap();
    assert_eq!(recv_message(&mut client).await.close_code(), Some(1002));
}

/// A self-signed certificate for localhost and 127.0.0.1, made with openssl.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server's own certificate, not a CA's, as webpki insists.
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (the README's test command installs it)");
    assert!(status.success());
    (cert, key)
}

/// A TLS connection that trusts only `ca` and offers `alpn`; the error says why it failed.
async fn tls(port: u16, ca: &Path, alpn: &[u8]) -> Result<TlsStream<TcpStream>, String> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(local(port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())
}

/// A wss:// client that trusts only `ca`.
async fn wss(port: u16, ca: &Path) -> Result<WebSocketStream<TlsStream<TcpStream>>, String> {
    let tls = tls(port, ca, b"http/1.1").await?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]), "ALPN http/1.1");
    let (ws, _) =
        tokio_tungstenite::client_async(format!("wss://localhost:{port}/"), tls).await.map_err(|e| e.to_string())?;
    Ok(ws)
}

/// A length-framed client over TLS (offering an ALPN protocol of its own,
/// which the raw TCP front does not hold against it).
async fn tcp_over_tls(port: u16, ca: &Path) -> Result<Framed<TlsStream<TcpStream>, LengthDelimitedCodec>, String> {
    Ok(Framed::new(tls(port, ca, b"fk").await?, LengthDelimitedCodec::new()))
}

async fn tcp_echoes(client: &mut Framed<TlsStream<TcpStream>, LengthDelimitedCodec>, text: &str) {
    client.send(Bytes::copy_from_slice(text.as_bytes())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), client.next()).await.expect("a reply in time");
    assert_eq!(&reply.unwrap().unwrap()[..], text.as_bytes());
}

async fn echoes(ws: &mut WebSocketStream<TlsStream<TcpStream>>, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a reply in time");
    assert_eq!(reply.unwrap().unwrap(), Message::text(text));
}

fn replace(from: &(PathBuf, PathBuf), to: &(PathBuf, PathBuf)) {
    std::fs::copy(&from.0, &to.0).unwrap();
    std::fs::copy(&from.1, &to.1).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_and_tcp_over_tls_clients_are_served_and_a_certificate_reload_on_sighup_drops_none() {
    let dir = scratch_file("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let (first, second) = (self_signed(&dir, "first"), self_signed(&dir, "second"));
    let live = (dir.join("live.pem"), dir.join("live.key"));
    replace(&first, &live);
    let (tls_port, tcp_tls_port, admin) = (free_port(), free_port(), free_port());
    let tls_args = [
        "--listen-tls".to_owned(),
        local(tls_port).to_string(),
        "--listen-tcp-tls".to_owned(),
        local(tcp_tls_port).to_string(),
        "--tls-cert".to_owned(),
        live.0.display().to_string(),
        "--tls-key".to_owned(),
        live.1.display().to_string(),
        "--admin".to_owned(),
        local(admin).to_string(),
    ];
    let (stack, _echo, _log) = echo_stack(&tls_args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    wait_for_port(tls_port, "gateway's TLS listener");

    wait_for_port(tcp_tls_port, "gateway's raw TCP listener over TLS");

    let mut before = wss(tls_port, &first.0).await.expect("wss with the first certificate");
    echoes(&mut before, "over wss").await;
    let mut tcp_before = tcp_over_tls(tcp_tls_port, &first.0).await.expect("TCP over TLS with the first certificate");
    tcp_echoes(&mut tcp_before, "length-framed over TLS").await;

    // A client that speaks no TLS fails its handshake, and it is counted.
    let (status, _) = e2e::http::request(tls_port, "GET", "/", "").map_or((0, String::new()), |r| r);
    assert_eq!(status, 0, "plain HTTP gets no answer from the TLS listener");
    assert!(eventually(Duration::from_secs(5), || metric(admin, "gateway_tls_handshake_failures_total") >= 1.0).await);
    // Nor does a length-framed client that skips TLS: no echo, the socket closed.
    let mut plain = TcpStream::connect(local(tcp_tls_port)).await.unwrap();
    plain.write_all(b"\0\0\0\x05hello").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await.expect("closed");
    assert!(read.is_err() || !answer.windows(5).any(|w| w == b"hello"), "no echo without TLS: {answer:?}");
    assert!(eventually(Duration::from_secs(5), || metric(admin, "gateway_tls_handshake_failures_total") >= 2.0).await);

    replace(&second, &live);
    stack.proc("gateway").signal("HUP");
    assert!(eventually(Duration::from_secs(5), || metric(admin, "gateway_tls_reloads_total") == 1.0).await);
    echoes(&mut before, "still here after the reload").await;
    let Err(refused) = wss(tls_port, &first.0).await else { panic!("the old certificate is still served") };
    assert!(refused.contains("certificate"), "{refused}");
    let mut after = wss(tls_port, &second.0).await.expect("wss with the new certificate");
    echoes(&mut after, "new certificate").await;
    let Err(refused) = tcp_over_tls(tcp_tls_port, &first.0).await else { panic!("raw TCP kept the old certificate") };
    assert!(refused.contains("certificate"), "{refused}");
    tcp_echoes(&mut tcp_over_tls(tcp_tls_port, &second.0).await.unwrap(), "raw TCP has the new one too").await;
    tcp_echoes(&mut tcp_before, "and its first connection lives on").await;

    // A broken file leaves the certificate in use.
    std::fs::write(&live.1, "not a key").unwrap();
    stack.proc("gateway").signal("HUP");
    assert!(eventually(Duration::from_secs(5), || metric(admin, "gateway_tls_reload_failures_total") == 1.0).await);
    let mut again = wss(tls_port, &second.0).await.expect("still the new certificate");
    echoes(&mut again, "unchanged").await;
    echoes(&mut before, "and the first connection lives on").await;
}
