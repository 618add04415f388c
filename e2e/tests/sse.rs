//! Server-Sent Events sessions, as `curl -N` sees them: the backend gets
//! what a WebSocket session gives it, pushes and kicks arrive as events,
//! a dropped stream resumes by `Last-Event-ID`, and every limit that binds
//! a WebSocket session binds this one.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::http::post as api;
use e2e::{backend_events, echo_stack, free_port, metric, Client, SseClient};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The params' names, less the per-connection values that differ anyway.
fn param_names(event: &Value) -> BTreeSet<String> {
    event["params"].as_object().unwrap().keys().filter(|k| *k != "HTTP_USER_AGENT").cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_session_gives_the_backend_what_a_websocket_session_does() {
    let (stack, _echo, log) = echo_stack(&["--param", "SCRIPT_FILENAME=/srv/app.php"], &[]);
    let headers = [("X-Custom", "yes"), ("SessionId", "0000000000000bad")];
    let mut ws = Client::connect_with_headers(&stack.ws_url("/chat?room=1"), &headers).await;
    ws.send(Message::text("héllo")).await;
    assert_eq!(ws.recv().await, Message::text("héllo"));
    ws.close().await;
    let websocket = backend_events(&log, 3);

    let mut sse = SseClient::open(stack.gateway_port, "/chat?room=1", &headers).unwrap();
    assert_eq!(sse.session["type"], "session");
    assert_eq!(sse.send("héllo"), 202);
    assert_eq!(sse.recv(), "héllo", "the backend's reply, as an event");
    let binary =
        e2e::sse::post(stack.gateway_port, "/chat/send", sse.send_token(), "application/octet-stream", "\u{1}");
    assert_eq!(binary, 202);
    let event = sse.next_event().unwrap();
    assert_eq!((event.event.as_str(), event.message()), ("binary", Some((vec![1], true))), "binary as base64");
    assert_eq!(sse.close_session(), 202);
    assert_eq!(sse.expect_close().0, 1000);
    let events = backend_events(&log, 7);
    let sse_events = &events[3..];

    let kinds = |events: &[Value]| events.iter().map(|e| e["event"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(kinds(sse_events), ["connect", "message", "message", "close"]);
    assert_eq!(kinds(&websocket), ["connect", "message", "close"]);
    let id = sse.id().to_owned();
    assert!(sse_events.iter().all(|e| e["params"]["SESSIONID"] == json!(id)), "one session id throughout");
    for (sse_event, ws_event) in [(0, 0), (1, 1), (3, 2)] {
        let (sse_event, ws_event) = (&sse_events[sse_event], &websocket[ws_event]);
        let mut names = param_names(ws_event);
        names.insert("TRANSPORT".into());
        assert_eq!(param_names(sse_event), names, "the same params, and TRANSPORT");
        assert_eq!(sse_event["params"]["TRANSPORT"], "sse");
        for same in ["REQUEST_URI", "QUERY_STRING", "HTTP_X_CUSTOM", "SCRIPT_FILENAME", "EVENT", "CONTENT_TYPE"] {
            assert_eq!(sse_event["params"][same], ws_event["params"][same], "{same}");
        }
        assert_eq!(sse_event["body"], ws_event["body"]);
    }
    assert!(sse_events[0]["params"].get("HTTP_SESSIONID").is_none(), "a header never poses as the session");
    assert_eq!(sse_events[2]["params"]["CONTENT_TYPE"], "application/octet-stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_channels_and_kicks_reach_an_sse_session_and_a_vanished_client_ends_it() {
    let (stack, _echo, log) = echo_stack(&[], &[]);
    let mut sse = SseClient::open(stack.gateway_port, "/", &[]).unwrap();
    let id = sse.id().to_owned();
    stack.wait_for_clients(1);
    let router = stack.router_http_port;
    assert_eq!(api(router, "/v1/send", json!({"sessions": [id], "data": "to you"})).0, 200);
    assert_eq!(sse.recv(), "to you");
    api(router, "/v1/join", json!({"channel": "room", "sessions": [id]}));
    api(router, "/v1/publish", json!({"channel": "room", "data": "line one\nline two"}));
    assert_eq!(sse.recv(), "line one\nline two", "a message of many lines, whole");
    api(router, "/v1/broadcast", json!({"data": "to all\r\nwith CRLF"}));
    let event = sse.next_event().unwrap();
    assert_eq!(event.event, "text64", "a CR would be a line end to the client: base64");
    assert_eq!(event.message().unwrap().0, b"to all\r\nwith CRLF");
    api(router, "/v1/kick", json!({"sessions": [id]}));
    assert_eq!(sse.expect_close(), (4000, "kicked".into()));
    assert!(sse.next_event().is_none(), "the stream ends after its close event");
    let events = backend_events(&log, 2);
    assert_eq!(events.last().unwrap()["event"], "close");

    let vanishing = SseClient::open(stack.gateway_port, "/", &[]).unwrap();
    let id = vanishing.id().to_owned();
    backend_events(&log, 3);
    let killed = Instant::now();
    vanishing.kill();
    let events = backend_events(&log, 4);
    assert_eq!((events[3]["event"].as_str(), events[3]["params"]["SESSIONID"].as_str()), (Some("close"), Some(&*id)));
    assert!(killed.elapsed() < Duration::from_secs(2), "closed in {:?}", killed.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_session_resumes_by_last_event_id_with_what_it_missed() {
    let (stack, _echo, log) = echo_stack(&["--resume-grace-ms", "10000"], &[]);
    let mut sse = SseClient::open(stack.gateway_port, "/?resume=1", &[]).unwrap();
    let id = sse.id().to_owned();
    assert_eq!(sse.session["resumed"], false);
    stack.wait_for_clients(1);
    let router = stack.router_http_port;
    for n in 1..=3 {
        api(router, "/v1/send", json!({"sessions": [id], "data": format!("m{n}")}));
        assert_eq!(sse.recv(), format!("m{n}"));
    }
    // The client got m1 and m2 and misses m3 and what comes while it is away.
    let resume_token = sse.session["resume"].as_str().unwrap().to_owned();
    let last = format!("{resume_token}/2");
    sse.kill();
    let events = backend_events(&log, 2);
    assert_eq!(events[1]["event"], "offline");
    for n in 4..=5 {
        api(router, "/v1/send", json!({"sessions": [id], "data": format!("m{n}")}));
    }
    let mut back = SseClient::open(stack.gateway_port, "/?resume=1", &[("Last-Event-ID", &last)]).unwrap();
    assert_eq!((back.id(), &back.session["resumed"]), (id.as_str(), &json!(true)));
    assert_ne!(back.session["resume"], json!(resume_token), "a new token for the next resume");
    let missed: Vec<String> = (0..3).map(|_| back.recv()).collect();
    assert_eq!(missed, ["m3", "m4", "m5"], "what it missed, in order");
    assert!(back.last_event_id.as_deref().unwrap().ends_with("/5"), "{:?}", back.last_event_id);
    assert_eq!(back.send("live"), 202);
    assert_eq!(back.recv(), "live");
    let kinds: Vec<Value> = backend_events(&log, 4).iter().map(|e| e["event"].clone()).collect();
    assert_eq!(kinds, ["connect", "offline", "online", "message"]);

    // The same Last-Event-ID again: that token was used.
    let replayed = SseClient::open(stack.gateway_port, "/", &[("Last-Event-ID", &last)]).err().unwrap();
    assert_eq!(replayed.0, 410);
    let refusal: Value = serde_json::from_str(&replayed.1).unwrap();
    assert_eq!((&refusal["code"], &refusal["reason"]), (&json!(4102), &json!("resume token already used")));
    let forged = SseClient::open(stack.gateway_port, "/", &[("Last-Event-ID", &format!("{id}.9.00/1"))]);
    assert_eq!(forged.err().unwrap().0, 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_sse_session_outlasts_the_idle_timeout_and_takes_no_handshake_slot() {
    let admin = free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let flags = ["--admin", &admin_addr, "--idle-timeout-ms", "1000", "--ping-interval-ms", "200"];
    let (stack, _echo, _log) = echo_stack(&[&flags[..], &["--max-handshakes", "2"]].concat(), &[]);
    let mut streams: Vec<SseClient> = (0..4).map(|_| SseClient::open(stack.gateway_port, "/", &[]).unwrap()).collect();
    assert_eq!(metric(admin, "gateway_sse_streams"), 4.0);
    assert_eq!(metric(admin, "gateway_handshakes"), 0.0, "a stream holds a session's seat, not a handshake slot");
    std::thread::sleep(Duration::from_millis(2500));
    for sse in &mut streams {
        assert_eq!(sse.send("still here"), 202);
        assert_eq!(sse.recv(), "still here", "heartbeats keep a stream that reads alive");
    }
    let mut ws = Client::connect(&stack.ws_url("/")).await;
    ws.send(Message::text("and a WebSocket")).await;
    assert_eq!(ws.recv().await, Message::text("and a WebSocket"));
    assert_eq!(metric(admin, r#"gateway_client_closes_total{reason="idle_timeout"}"#), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_sse_sessions_as_they_refuse_websocket_ones() {
    let admin = free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let (stack, _echo, _log) = echo_stack(&["--admin", &admin_addr, "--max-connections-per-ip", "2"], &[]);
    let _ws = Client::connect(&stack.ws_url("/")).await;
    let _sse = SseClient::open(stack.gateway_port, "/", &[]).unwrap();
    let refused = SseClient::open(stack.gateway_port, "/", &[]).err().unwrap();
    assert_eq!(refused.0, 429, "{}", refused.1);
    let ws = Client::try_connect(&stack.ws_url("/"), &[], None).await;
    assert_eq!(ws.err().as_deref(), Some("HTTP 429"), "a WebSocket, refused the same");
    assert_eq!(metric(admin, r#"gateway_connections_refused_total{reason="ip_connections"}"#), 2.0);

    let (full, _echo, _log) = echo_stack(&["--max-connections", "2"], &[]);
    let _ws = Client::connect(&full.ws_url("/")).await;
    let _sse = SseClient::open(full.gateway_port, "/", &[]).unwrap();
    let (status, body) = SseClient::open(full.gateway_port, "/", &[]).err().unwrap();
    let refusal: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &refusal["code"]), (503, &json!(1013)), "{body}");
    let mut ws = Client::connect(&full.ws_url("/")).await;
    let frame = ws.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1013, "a WebSocket, refused the same");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_reads_nothing_is_dropped_at_the_queue_bound() {
    use std::io::{Read, Write};
    let admin = free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let flags = ["--admin", &admin_addr, "--outbound-queue-bytes", "65536", "--write-timeout-ms", "500"];
    let (stack, _echo, _log) = echo_stack(&flags, &[]);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&e2e::processes::local(stack.gateway_port).into()).unwrap();
    let mut slow: std::net::TcpStream = socket.into();
    write!(slow, "GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&head).contains("\"send\"") || !head.ends_with(b"\n\n") {
        slow.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let slow_id = text.split("\"id\":\"").nth(1).unwrap()[..16].to_owned();
    let mut fast = SseClient::open(stack.gateway_port, "/", &[]).unwrap();
    stack.wait_for_clients(2);

    let router = stack.router_http_port;
    let chunk = "x".repeat(64 * 1024);
    for _ in 0..100 {
        api(router, "/v1/send", json!({"sessions": [slow_id], "data": chunk}));
    }
    api(router, "/v1/send", json!({"sessions": [fast.id()], "data": "for the fast one"}));
    assert_eq!(fast.recv(), "for the fast one", "a stuck client holds up nobody else");
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(admin, r#"gateway_client_closes_total{reason="slow_consumer"}"#) < 1.0 {
        assert!(Instant::now() < deadline, "the slow client was never dropped");
        std::thread::sleep(Duration::from_millis(50));
    }
    while metric(admin, "gateway_sessions") != 1.0 {
        assert!(Instant::now() < deadline, "the slow client's session never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fast.send("still fine"), 202);
    assert_eq!(fast.recv(), "still fine");
}

/// A stream is a connection's first request, served on the socket
/// itself (its response ends with the connection). One asked on a
/// connection hyper already serves is sent to a connection of its own
/// (307 to the same URL, and that connection closes), as a browser
/// follows; there it is the same session as any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_asked_on_a_kept_alive_connection_is_sent_to_one_of_its_own() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (stack, _echo, log) = echo_stack(&[], &[]);
    let addr = e2e::processes::local(stack.gateway_port);
    let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    kept.write_all(b"GET /reused?x=1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    kept.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    let second = &answer[answer.find("not found\n").expect("the first answered") + 10..];
    assert!(second.starts_with("http/1.1 307"), "{second}");
    assert!(second.contains("location: /reused?x=1\r\n") && second.contains("connection: close\r\n"), "{second}");
    let mut followed =
        loadgen::sse::SseClient::connect(tokio::net::TcpStream::connect(addr).await.unwrap(), addr, "/reused")
            .await
            .unwrap();
    assert!(!followed.chunked(), "the gateway's own response on a first request");
    followed.send(b"on a connection of its own", false).await.unwrap();
    assert_eq!(followed.recv().await.unwrap().unwrap(), &b"on a connection of its own"[..]);
    let events = backend_events(&log, 2);
    let uris: Vec<&str> = events.iter().map(|e| e["params"]["REQUEST_URI"].as_str().unwrap()).collect();
    assert_eq!(uris, ["/reused", "/reused"], "one session, opened on the connection of its own");
    assert!(events.iter().all(|e| e["params"]["TRANSPORT"] == "sse"));
}

/// A browser's own `EventSource` resumes whenever it drops: the session
/// event carries an id (where the client stands), so a drop before the
/// first message comes back with a Last-Event-ID, and so does a drop
/// right after a resume that replayed nothing (its session event names
/// the new token). Each comes back to the same session, with what it
/// missed. (Without an id on the session event, the first came back as a
/// new session, and the second sent the spent token and got 410 4102.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_source_resumes_from_its_session_event_too() {
    let (stack, _echo, _log) = echo_stack(&["--resume-grace-ms", "10000"], &[]);
    let first = SseClient::open(stack.gateway_port, "/?resume=1", &[]).unwrap();
    let id = first.id().to_owned();
    let stands = first.last_event_id.clone().expect("the session event has an id");
    assert!(stands.ends_with("/0"), "nothing got yet: {stands}");
    stack.wait_for_clients(1);
    first.kill();
    api(stack.router_http_port, "/v1/send", json!({"sessions": [id], "data": "while away"}));
    let mut back = SseClient::open(stack.gateway_port, "/?resume=1", &[("Last-Event-ID", &stands)]).unwrap();
    assert_eq!((back.id(), &back.session["resumed"]), (id.as_str(), &json!(true)), "the same session");
    assert_eq!(back.recv(), "while away");
    let stands = back.last_event_id.clone().unwrap();
    back.kill();
    let again = SseClient::open(stack.gateway_port, "/?resume=1", &[("Last-Event-ID", &format!("{id}.9.00/0"))]);
    assert_eq!(again.err().unwrap().0, 410, "a made-up id is no resume");
    // A resume that replays nothing, dropped at once: its session event
    // alone says where the client stands, under the new token.
    let replayed_nothing = SseClient::open(stack.gateway_port, "/?resume=1", &[("Last-Event-ID", &stands)]).unwrap();
    assert_eq!(replayed_nothing.id(), id);
    let stands = replayed_nothing.last_event_id.clone().unwrap();
    replayed_nothing.kill();
    let last = SseClient::open(stack.gateway_port, "/?resume=1", &[("Last-Event-ID", &stands)]).unwrap();
    assert_eq!((last.id(), &last.session["resumed"]), (id.as_str(), &json!(true)), "resumed again, not 4102");
}

/// After an SSE session ends, a post with its send token is told so
/// (410), not that the session is elsewhere (421); a post while its
/// stream is down and the session waits for it is told to come again
/// (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_to_a_session_that_ended_here_gets_410() {
    let (stack, _echo, _log) = echo_stack(&["--resume-grace-ms", "10000"], &[]);
    let sse = SseClient::open(stack.gateway_port, "/", &[]).unwrap();
    let token = sse.send_token().to_owned();
    assert_eq!(sse.close_session(), 202);
    let status = |token: &str| e2e::sse::post(stack.gateway_port, "/send", token, "text/plain", "late");
    assert!(e2e::eventually(Duration::from_secs(5), || status(&token) == 410).await, "ended: {}", status(&token));
    let away = SseClient::open(stack.gateway_port, "/?resume=1", &[]).unwrap();
    let token = away.send_token().to_owned();
    stack.wait_for_clients(1);
    away.kill();
    assert!(e2e::eventually(Duration::from_secs(5), || status(&token) == 503).await, "away: {}", status(&token));
}

/// A connect the backend refuses gets the refusal as the stream's
/// response (403, with the close code a WebSocket client would get), and
/// no session event and no send token. (It got 200, a session event with
/// a send token, then 4403; a post with that token got 202.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_gets_its_refusal_and_no_send_token() {
    let (stack, _echo, log) = echo_stack(&[], &["--refuse-connect"]);
    let (status, body) = SseClient::open(stack.gateway_port, "/", &[]).err().expect("refused");
    assert_eq!(status, 403, "{body}");
    let refusal: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&refusal["type"], &refusal["code"], &refusal["reason"]),
        (&json!("close"), &json!(4403), &json!("no entry"))
    );
    assert!(!body.contains("send"), "no send token: {body}");
    let events = backend_events(&log, 1);
    assert_eq!(events.len(), 1, "the connect, and no close event for a session never taken: {events:?}");
}
