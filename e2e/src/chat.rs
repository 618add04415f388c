//! The chat scenario every chat backend must pass, as a client sees it.

use serde_json::{json, Value};

use crate::Client;

/// Drops the `time` field after checking it is "HH:MM".
pub fn without_time(mut msg: Value) -> Value {
    let time = msg["time"].as_str().unwrap_or_else(|| panic!("no time in {msg}")).to_owned();
    assert!(
        time.len() == 5 && time.as_bytes()[2] == b':' && time.replace(':', "").chars().all(|c| c.is_ascii_digit()),
        "bad time {time:?}"
    );
    msg.as_object_mut().unwrap().remove("time");
    msg
}

/// Logs in and returns the session id the backend announced.
pub async fn login(client: &mut Client, name: &str, already_online: &[(&str, &str)]) -> String {
    client.send_json(json!({"type": "login", "name": name})).await;
    let got = client.recv_json_unordered(2).await;
    let announce = got.iter().find(|m| m["type"] == "login").unwrap_or_else(|| panic!("no login broadcast in {got:?}"));
    let id = announce["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "session id {id}");
    let mut online: Vec<Value> = already_online.iter().map(|(n, i)| json!({"name": n, "id": i})).collect();
    online.push(json!({"name": name, "id": id}));
    online.sort_by_key(|u| (u["name"].as_str().unwrap().to_owned(), u["id"].as_str().unwrap().to_owned()));
    let mut expected = vec![json!({"type": "login", "name": name, "id": id}), json!({"type": "list", "list": online})];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(got, expected);
    id
}

/// Two users chat on channel 1 and channel 0; a third, outside channel 1,
/// sees only channel 0. Each asserts the exact JSON it receives.
pub async fn scenario(ws_url: &str) {
    let mut alice = Client::connect(ws_url).await;
    let a = login(&mut alice, "alice", &[]).await;

    let mut bob = Client::connect(ws_url).await;
    let b = login(&mut bob, "bob", &[("alice", &a)]).await;
    assert_eq!(alice.recv_json().await, json!({"type": "login", "name": "bob", "id": b}));

    let mut carol = Client::connect(ws_url).await;
    let c = login(&mut carol, "carol", &[("alice", &a), ("bob", &b)]).await;
    assert_eq!(alice.recv_json().await, json!({"type": "login", "name": "carol", "id": c}));
    assert_eq!(bob.recv_json().await, json!({"type": "login", "name": "carol", "id": c}));

    alice.send_json(json!({"type": "join", "channel": 1})).await;
    bob.send_json(json!({"type": "join", "channel": "1"})).await;
    bob.send_json(json!({"type": "userlist"})).await;
    let list = json!({"type": "list", "list": sorted_users(&[("alice", &a), ("bob", &b), ("carol", &c)])});
    assert_eq!(bob.recv_json().await, list, "join has no reply; userlist answers");

    alice.send_json(json!({"type": "msg", "channel": 1, "text": "hi <b>bob</b> & co"})).await;
    let on_one = json!({"type": "msg", "name": "alice", "channel": 1, "text": "hi &lt;b&gt;bob&lt;/b&gt; &amp; co"});
    assert_eq!(without_time(alice.recv_json().await), on_one);
    assert_eq!(without_time(bob.recv_json().await), on_one);

    bob.send_json(json!({"type": "msg", "channel": 0, "text": "hello all"})).await;
    let on_zero = json!({"type": "msg", "name": "bob", "channel": 0, "text": "hello all"});
    assert_eq!(without_time(alice.recv_json().await), on_zero);
    assert_eq!(without_time(bob.recv_json().await), on_zero);
    assert_eq!(
        without_time(carol.recv_json().await),
        on_zero,
        "carol is not in channel 1, so this is her first message"
    );

    bob.close().await;
    let bye = json!({"type": "close", "name": "bob", "id": b});
    assert_eq!(alice.recv_json().await, bye);
    assert_eq!(carol.recv_json().await, bye);

    alice.send_json(json!({"type": "userlist"})).await;
    let list = json!({"type": "list", "list": sorted_users(&[("alice", &a), ("carol", &c)])});
    assert_eq!(alice.recv_json().await, list);
    alice.close().await;
    carol.close().await;
}

fn sorted_users(users: &[(&str, &str)]) -> Vec<Value> {
    users.iter().map(|(n, i)| json!({"name": n, "id": i})).collect()
}

/// Two clients logged in as "a" and "b" (a has seen b's login): the
/// usual start of a router test.
pub async fn two_logged_in(url: &str) -> (Client, String, Client, String) {
    let mut a = Client::connect(url).await;
    let a_id = login(&mut a, "a", &[]).await;
    let mut b = Client::connect(url).await;
    let b_id = login(&mut b, "b", &[("a", &a_id)]).await;
    a.recv_json().await;
    (a, a_id, b, b_id)
}
