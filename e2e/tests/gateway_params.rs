//! What the gateway tells the FastCGI backend, and how it turns replies
//! into frames, seen by a real backend process (examples/echo).

use e2e::{backend_events, echo_stack, Client, Stack, StackOptions};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_events_and_frame_types() {
    let (stack, _echo, log) = echo_stack(&["--param", "SCRIPT_FILENAME=/srv/app.php"], &["--report-connect"]);
    let headers = [("X-Custom", "yes"), ("SessionId", "0000000000000bad"), ("Event", "2")];
    let mut client = Client::connect_with_headers(&stack.ws_url("/chat/room?x=1&y=2"), &headers).await;

    let connect = client.recv_json().await;
    let session = connect["SESSIONID"].as_str().unwrap().to_owned();
    assert!(session.len() == 16 && session.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{session}");
    let port = client.local_port().to_string();
    for (name, value) in [
        ("EVENT", "1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", port.as_str()),
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/chat/room?x=1&y=2"),
        ("QUERY_STRING", "x=1&y=2"),
        ("HTTP_X_CUSTOM", "yes"),
        ("SCRIPT_FILENAME", "/srv/app.php"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
    ] {
        assert_eq!(connect[name], json!(value), "{name} in {connect}");
    }
    assert!(connect.get("CONTENT_LENGTH").is_none(), "events have no body: {connect}");
    assert!(
        connect.get("HTTP_SESSIONID").is_none() && connect.get("HTTP_EVENT").is_none(),
        "client headers must not pose as gateway params: {connect}"
    );

    client.send(Message::text("héllo")).await;
    assert_eq!(client.recv().await, Message::text("héllo"));
    client.send(Message::binary(vec![0u8, 159, 146, 150])).await;
    assert_eq!(
        client.recv().await,
        Message::binary(vec![0u8, 159, 146, 150]),
        "octet-stream replies are binary frames"
    );
    client.close().await;

    let events = backend_events(&log, 4);
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["connect", "message", "message", "close"], "connect first, close last");
    assert!(events.iter().all(|e| e["params"]["SESSIONID"] == json!(session)), "one session id throughout");

    let text = &events[1]["params"];
    assert!(text.get("EVENT").is_none(), "a message has no EVENT: {text}");
    assert_eq!((&text["CONTENT_LENGTH"], &text["CONTENT_TYPE"]), (&json!("6"), &json!("text/plain; charset=utf-8")));
    assert_eq!(events[1]["body"], "héllo");
    let binary = &events[2]["params"];
    assert_eq!((&binary["CONTENT_LENGTH"], &binary["CONTENT_TYPE"]), (&json!("4"), &json!("application/octet-stream")));
    assert_eq!(events[3]["params"]["EVENT"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_style_prefix_puts_http_before_sessionid_and_event() {
    let (stack, _echo, _) = echo_stack(&["--param-prefix", "HTTP_"], &["--report-connect"]);
    let mut client = Client::connect_with_headers(&stack.ws_url("/"), &[("SessionId", "0000000000000bad")]).await;
    let connect = client.recv_json().await;
    assert_eq!(connect["HTTP_EVENT"], "1");
    let id = connect["HTTP_SESSIONID"].as_str().unwrap();
    assert_ne!(id, "0000000000000bad", "the client's header never wins");
    assert!(connect.get("SESSIONID").is_none());
}

/// The names `--param-prefix` gives SESSIONID, EVENT, CHANNEL and
/// TRANSPORT are the gateway's alone: a client header that would arrive under one (`Fk-Sessionid` as
/// `HTTP_FK_SESSIONID`) is dropped, so the backend sees one value, ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_header_never_arrives_under_the_prefixed_names() {
    let (stack, _echo, _) =
        echo_stack(&["--param-prefix", "HTTP_FK_"], &["--report-connect", "--param-prefix", "HTTP_FK_"]);
    let forged = [
        ("Fk-Sessionid", "0000000000000bad"),
        ("Fk-Event", "2"),
        ("Fk-Channel", "private"),
        ("Fk-Transport", "sse"),
        ("Fk-Other", "kept"),
    ];
    let mut client = Client::connect_with_headers(&stack.ws_url("/"), &forged).await;
    let connect = client.recv_json().await;
    let id = connect["HTTP_FK_SESSIONID"].as_str().unwrap_or_else(|| panic!("one session id: {connect}"));
    assert_ne!(id, "0000000000000bad");
    assert_eq!(connect["HTTP_FK_EVENT"], "1", "{connect}");
    assert_eq!(connect["HTTP_FK_OTHER"], "kept");
    let posing = ["HTTP_FK_CHANNEL", "HTTP_FK_TRANSPORT"];
    assert!(posing.iter().all(|name| connect.get(name).is_none()), "the subscribe's and SSE's names: {connect}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_on_get_slash() {
    let stack = Stack::start(StackOptions::default());
    let (status, body) = e2e::http::request(stack.gateway_port, "GET", "/", "").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/chat/index.html")).unwrap()
    );
    let (status, _) = e2e::http::request(stack.gateway_port, "GET", "/nope", "").unwrap();
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_messages_keep_their_type_both_ways() {
    let (stack, _echo, log) = echo_stack(&[], &[]);
    let mut client = Client::connect(&stack.ws_url("/")).await;
    client.send(Message::binary(Vec::<u8>::new())).await;
    assert_eq!(client.recv().await, Message::binary(Vec::<u8>::new()), "X-Send-Empty: 1 sends an empty message");
    client.send(Message::text("")).await;
    assert_eq!(client.recv().await, Message::text(""));
    let events = backend_events(&log, 3);
    assert_eq!(events[1]["params"]["CONTENT_TYPE"], "application/octet-stream");
    assert!(events[1]["params"].get("CONTENT_LENGTH").is_none(), "no length for an empty body, as fooking sends it");
    assert_eq!(events[2]["params"]["CONTENT_TYPE"], "text/plain; charset=utf-8");
}
