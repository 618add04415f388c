//! Every router command, over fooking's binary frames and over the HTTP
//! API, asserted by what real connected clients receive.

use e2e::{chat, fooking, http, Client, Redis, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, PartialEq)]
enum Via {
    Binary,
    Http,
}

/// One router call, expressed once and sent either way.
enum Call<'a> {
    Send(&'a [&'a str], &'a [u8], bool),
    Broadcast(&'a str),
    Join(&'a str, &'a [&'a str]),
    Leave(&'a str, &'a [&'a str]),
    Publish(&'a str, &'a str),
    Kick(&'a [&'a str]),
}

fn ids_area(ids: &[&str]) -> Vec<u8> {
    ids.concat().into_bytes()
}

fn b64(raw: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// Sends the call; over HTTP, returns the JSON result.
fn call(stack: &Stack, via: Via, call: Call) -> Option<Value> {
    if via == Via::Binary {
        let frame = match call {
            Call::Send(ids, data, binary) => fooking::frame(fooking::SEND_MSG, &ids_area(ids), data, binary),
            Call::Broadcast(text) => fooking::frame(fooking::SEND_ALL, b"", text.as_bytes(), false),
            Call::Join(channel, ids) => fooking::frame(fooking::CH_ADD, &ids_area(ids), channel.as_bytes(), false),
            Call::Leave(channel, ids) => fooking::frame(fooking::CH_DEL, &ids_area(ids), channel.as_bytes(), false),
            Call::Publish(channel, text) => fooking::frame(fooking::CH_PUB, channel.as_bytes(), text.as_bytes(), false),
            Call::Kick(ids) => fooking::frame(fooking::KICK, &ids_area(ids), b"", false),
        };
        fooking::call(stack.router_port, &frame);
        return None;
    }
    let (path, body) = match call {
        Call::Send(ids, data, true) => ("/v1/send", json!({"sessions": ids, "data_base64": b64(data)})),
        Call::Send(ids, data, false) => {
            ("/v1/send", json!({"sessions": ids, "data": std::str::from_utf8(data).unwrap()}))
        }
        Call::Broadcast(text) => ("/v1/broadcast", json!({"data": text})),
        Call::Join(channel, ids) => ("/v1/join", json!({"channel": channel, "sessions": ids})),
        Call::Leave(channel, ids) => ("/v1/leave", json!({"channel": channel, "sessions": ids})),
        Call::Publish(channel, text) => ("/v1/publish", json!({"channel": channel, "data": text})),
        Call::Kick(ids) => ("/v1/kick", json!({"sessions": ids})),
    };
    let (status, reply) = http::post(stack.router_http_port, path, body);
    assert_eq!(status, 200, "{path}: {reply}");
    Some(reply)
}

async fn text(client: &mut Client) -> String {
    match client.recv().await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn info(stack: &Stack, via: Via) -> Value {
    match via {
        Via::Http => {
            let (status, body) = http::request(stack.router_http_port, "GET", "/v1/info", "").unwrap();
            assert_eq!(status, 200);
            serde_json::from_str(&body).unwrap()
        }
        Via::Binary => {
            let reply = fooking::call(stack.router_port, &fooking::frame(fooking::INFO, b"", b"", false)).unwrap();
            let text = String::from_utf8(reply).unwrap();
            // `clients: N\r\nchannels: N\r\n` then `gateway: sid\twid\tsessions\tchannels\r\n`.
            let lines: Vec<&str> = text.split_terminator("\r\n").collect();
            assert_eq!(lines.len(), 3, "{text:?}");
            let field = |line: &str, key: &str| {
                line.strip_prefix(key).unwrap_or_else(|| panic!("{line:?}")).parse::<u64>().unwrap()
            };
            let gw: Vec<u64> =
                lines[2].strip_prefix("gateway: ").unwrap().split('\t').map(|f| f.parse().unwrap()).collect();
            json!({"clients": field(lines[0], "clients: "), "channels": field(lines[1], "channels: "),
                   "gateways": [{"server_id": gw[0], "worker_id": gw[1], "sessions": gw[2], "channels": gw[3]}]})
        }
    }
}

async fn every_command(via: Via) {
    let redis = Redis::start();
    let stack = Stack::start(StackOptions { redis: Some(redis.url()), ..Default::default() });
    let url = stack.ws_url("/");
    let (mut a, a_id, mut b, b_id) = chat::two_logged_in(&url).await;
    let (a_only, both) = (&[a_id.as_str()][..], &[a_id.as_str(), b_id.as_str()][..]);
    let delivered = |sessions: usize| Some(json!({"sessions": sessions, "delivered_to_gateways": 1}));
    let http = |expected: Option<Value>| if via == Via::Http { expected } else { None };

    assert_eq!(call(&stack, via, Call::Send(a_only, b"to a", false)), http(delivered(1)));
    assert_eq!(text(&mut a).await, "to a");

    assert_eq!(call(&stack, via, Call::Broadcast("to all")), http(delivered(2)));
    assert_eq!(text(&mut a).await, "to all");
    assert_eq!(text(&mut b).await, "to all", "b's first push: the send to a did not reach b");

    assert_eq!(call(&stack, via, Call::Join("room", both)), http(Some(json!({"sessions": 2}))));
    assert_eq!(call(&stack, via, Call::Publish("room", "in room")), http(delivered(2)));
    assert_eq!(text(&mut a).await, "in room");
    assert_eq!(text(&mut b).await, "in room");

    assert_eq!(call(&stack, via, Call::Leave("room", &[b_id.as_str()])), http(Some(json!({"sessions": 1}))));
    assert_eq!(call(&stack, via, Call::Publish("room", "only a")), http(delivered(1)));
    assert_eq!(text(&mut a).await, "only a");
    call(&stack, via, Call::Broadcast("sync"));
    assert_eq!(text(&mut a).await, "sync");
    assert_eq!(text(&mut b).await, "sync", "b left the room before \"only a\"");

    call(&stack, via, Call::Send(a_only, &[0, 1, 2, 255], true));
    assert_eq!(a.recv().await, Message::Binary(vec![0u8, 1, 2, 255].into()));

    let report = info(&stack, via);
    assert_eq!((report["clients"].as_u64(), report["channels"].as_u64()), (Some(2), Some(1)), "{report}");
    let gateway = &report["gateways"][0];
    assert_eq!((gateway["sessions"].as_u64(), gateway["channels"].as_u64()), (Some(2), Some(1)), "{report}");
    assert!(gateway["worker_id"].as_u64().is_some(), "each gateway run has its own worker id: {report}");

    assert_eq!(call(&stack, via, Call::Kick(&[b_id.as_str()])), http(delivered(1)));
    let close = b.expect_close().await.expect("a close frame with a code");
    assert_eq!((u16::from(close.code), close.reason.as_str()), (4000, "kicked"));
    assert_eq!(
        a.recv_json().await,
        json!({"type": "close", "name": "b", "id": b_id}),
        "the kick's close event reached the backend"
    );
    call(&stack, via, Call::Send(a_only, b"nothing before this", false));
    assert_eq!(a.recv().await, Message::text("nothing before this"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_over_fookings_binary_frames() {
    every_command(Via::Binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_over_the_http_api() {
    every_command(Via::Http).await;
}

/// Reads one frame: its type and data.
fn read_frame(stream: &mut std::net::TcpStream) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).unwrap();
    let slen = u16::from_be_bytes([header[2], header[3]]) as usize;
    let len = (u32::from_be_bytes(header[4..].try_into().unwrap()) & 0x7fff_ffff) as usize;
    let mut rest = vec![0u8; slen + len];
    stream.read_exact(&mut rest).unwrap();
    (u16::from_be_bytes([header[0], header[1]]), rest.split_off(slen))
}

/// A backend that opens with AUTH `backend+replies` gets one reply per
/// command: OK with the result, the command's own reply, or ERROR with
/// why, and the connection stays open after an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_asks_for_replies_gets_one_per_command() {
    use std::io::Write;
    let stack = Stack::start(StackOptions::default());
    let mut client = Client::connect(&stack.ws_url("/")).await;
    stack.wait_for_clients(1);
    let mut router = std::net::TcpStream::connect(("127.0.0.1", stack.router_port)).unwrap();
    router.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let json = |data: Vec<u8>| serde_json::from_slice::<Value>(&data).unwrap();
    router.write_all(&fooking::frame(1, b"backend+replies", b"", false)).unwrap();

    router.write_all(&fooking::frame(fooking::SEND_ALL, b"", b"to all", false)).unwrap();
    let (kind, data) = read_frame(&mut router);
    assert_eq!((kind, json(data)), (115, json!({"sessions": 1, "delivered_to_gateways": 1})));
    assert_eq!(client.recv().await, Message::text("to all"));

    router.write_all(&fooking::frame(77, b"", b"", false)).unwrap();
    let (kind, data) = read_frame(&mut router);
    assert_eq!((kind, json(data)["error"]["code"].clone()), (116, json!("bad_request")));

    let large = vec![b'x'; (1 << 20) - 1];
    router.write_all(&fooking::frame(fooking::CH_PUB, b"room", &large, false)).unwrap();
    assert_eq!(read_frame(&mut router).0, 115, "at the limit");
    // The router closes as soon as it reads the header, so the rest of
    // this write may meet a reset: what is checked is that it closes.
    let _ = router.write_all(&fooking::frame(fooking::CH_PUB, b"room", &[large, b"xx".to_vec()].concat(), false));
    let closed = std::io::Read::read(&mut router, &mut [0; 8]).unwrap_or(0);
    assert_eq!(closed, 0, "past the limit the frame cannot be read: the connection closes");
}
