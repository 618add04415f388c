//! The game-login queue as a client sees it: accounts and logins over
//! HTTP, then /ws/check at capacity 1, a line that moves.

use serde_json::{json, Value};

use crate::http::exchange;
use crate::{Client, Stack};

struct Game<'a> {
    stack: &'a Stack,
}

/// The chat-app's `--operator-token` in the queue tests.
pub const OPERATOR_TOKEN: &str = "operator-secret";

impl Game<'_> {
    fn call(&self, path: &str, body: Value) -> (Value, Vec<(String, String)>) {
        self.call_with(path, body, &[])
    }

    /// As the game's server: with the operator's token.
    fn operator_call(&self, path: &str) -> Value {
        self.call_with(path, json!({}), &[("Authorization", &format!("Bearer {OPERATOR_TOKEN}"))]).0
    }

    fn call_with(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> (Value, Vec<(String, String)>) {
        let headers: Vec<(&str, &str)> =
            [("Content-Type", "application/json")].into_iter().chain(headers.iter().copied()).collect();
        let (status, headers, text) =
            exchange(self.stack.gateway_port, "POST", &format!("/api/v1/game/{path}"), &headers, &body.to_string());
        let reply: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
        (reply, headers)
    }

    /// Registers and logs in; returns the uid and the cookie to send.
    fn player(&self, name: &str) -> (u64, String) {
        let credentials = json!({"username": name, "password": format!("{name}-pw")});
        assert_eq!(self.call("register", credentials.clone()).0["code"], 0);
        let (reply, headers) = self.call("login", credentials);
        assert_eq!(reply["code"], 0, "{reply}");
        let set_cookie = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.clone())
            .expect("a cookie");
        assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
        (reply["uid"].as_u64().unwrap(), set_cookie.split(';').next().unwrap().to_owned())
    }

    async fn check(&self, cookie: &str) -> Client {
        let mut client = Client::connect_with_headers(&self.stack.ws_url("/ws/check"), &[("Cookie", cookie)]).await;
        client.send_json(json!({"game_name": "demo", "region": "eu"})).await;
        client
    }
}

fn admitted(reply: &Value) -> bool {
    reply["code"] == 0
        && reply["gate_servers"].as_array().is_some_and(|s| !s.is_empty())
        && reply["chat_servers"].is_array()
}

/// The whole flow; the stack's app runs with `--queue-capacity 1` and
/// `--operator-token` [`OPERATOR_TOKEN`], the gateway with `--http-route /api/`.
pub async fn scenario(stack: &Stack) {
    let game = Game { stack };
    let (alice_uid, alice) = game.player("alice");
    let (_, bob) = game.player("bob");
    let (_, carol) = game.player("carol");

    assert_eq!(game.call("register", json!({"username": "alice", "password": "x"})).0["code"], 2, "name taken");
    assert_eq!(game.call("login", json!({"username": "bob", "password": "wrong"})).0["code"], 1, "wrong password");
    assert_eq!(
        game.call("login", json!({"username": "x".repeat(33), "password": "x"})).0["code"],
        400,
        "over-long name"
    );
    assert_eq!(game.call("login", json!("not an object")).0["code"], 400);

    let mut anonymous = Client::connect(&game.stack.ws_url("/ws/check")).await;
    let refused = anonymous.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(refused.code), 4401, "no cookie, no queue: {refused:?}");

    let mut alice_ws = game.check(&alice).await;
    assert!(admitted(&alice_ws.recv_json().await), "room for the first");
    let mut bob_ws = game.check(&bob).await;
    assert_eq!(bob_ws.recv_json().await, json!({"code": 3, "front_users": 1}), "one slot must free for bob");
    let mut carol_ws = game.check(&carol).await;
    assert_eq!(carol_ws.recv_json().await, json!({"code": 3, "front_users": 2}));

    carol_ws.send_json(json!({"game_name": "demo", "region": "mars"})).await;
    assert_eq!(carol_ws.recv_json().await["code"], 404, "unknown region");
    carol_ws.send(tokio_tungstenite::tungstenite::Message::text("{oops")).await;
    assert_eq!(carol_ws.recv_json().await["code"], 400, "not JSON, and the connection stays");

    bob_ws.close().await;
    assert_eq!(carol_ws.recv_json().await, json!({"code": 3, "front_users": 1}), "bob left: carol moves up");

    assert_eq!(game.operator_call(&format!("offline/{alice_uid}"))["code"], 0);
    assert!(admitted(&carol_ws.recv_json().await), "alice's slot went to the head of the line");
    assert_eq!(game.operator_call(&format!("offline/{alice_uid}"))["code"], 404, "alice is out already");
    let (reply, headers) = game.call("logout", json!({}));
    let cleared = headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.contains("Max-Age=0"));
    assert!(reply["code"] == 0 && cleared, "logout clears the cookie: {reply} {headers:?}");
    alice_ws.close().await;
}
