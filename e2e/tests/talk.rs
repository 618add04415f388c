//! The talk protocol (docs/talk.proto) on binary frames, against chat-app:
//! talk, userlist, ping, exit, and a truncated message.

use e2e::{Client, Stack, StackOptions};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

/// Written from docs/talk.proto, apart from chat-app's own.
#[derive(Clone, PartialEq, prost::Message)]
struct Talk {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    msg: String,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    cmd: String,
}

fn talk(cmd: &str, msg: &str) -> Message {
    Message::binary(Talk { cmd: cmd.into(), msg: msg.into(), ..Default::default() }.encode_to_vec())
}

async fn recv_talk(client: &mut Client) -> Talk {
    match client.recv().await {
        Message::Binary(data) => Talk::decode(&data[..]).expect("a Talk message"),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talk_userlist_ping_exit_and_bad_frames() {
    let stack = Stack::start(StackOptions::default());
    let url = stack.ws_url("/talk");
    let mut alice = Client::connect_with_headers(&url, &[("username", "alice")]).await;
    let mut bob = Client::connect_with_headers(&url, &[("username", "bob")]).await;

    alice.send(talk("ping", "")).await;
    assert_eq!(recv_talk(&mut alice).await, Talk { cmd: "pong".into(), ..Default::default() });

    alice.send(talk("talk", "hi <all>")).await;
    let said = Talk { cmd: "talk".into(), name: "alice".into(), msg: "hi &lt;all&gt;".into(), code: 0 };
    assert_eq!(recv_talk(&mut alice).await, said);
    assert_eq!(recv_talk(&mut bob).await, said);

    bob.send(talk("userlist", "")).await;
    assert_eq!(
        recv_talk(&mut bob).await,
        Talk { cmd: "userlist".into(), msg: "alice,bob".into(), ..Default::default() }
    );

    // Field 2 says 5 bytes follow; one does.
    alice.send(Message::binary(vec![0x12, 0x05, b'a'])).await;
    let error = recv_talk(&mut alice).await;
    assert_eq!((error.cmd.as_str(), error.code), ("error", 400), "{error:?}");
    alice.send(talk("ping", "")).await;
    assert_eq!(recv_talk(&mut alice).await.cmd, "pong", "still usable after a bad frame");

    // Without a username header, a client is no talker: its binary frames
    // are chat's JSON (as raw TCP clients' are), so a Talk is not JSON.
    let mut nameless = Client::connect(&url).await;
    nameless.send(talk("talk", "who am I")).await;
    assert_eq!(nameless.recv_json().await["code"], 400, "a talker needs a username header");

    bob.send(talk("exit", "")).await;
    let close = bob.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4000, "exit is a kick");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        alice.send(talk("userlist", "")).await;
        if recv_talk(&mut alice).await.msg == "alice" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bob never left the list");
    }
}
