//! A Pusher client's messages, decided without I/O: what each one does
//! (a pong, a join once its signature checks, a leave, a client event to
//! relay or to put to the backend first, a sign-in), as a [`Step`] the
//! task carries out. The wire is `protocol::pusher`'s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use protocol::cmd::Channel;
use protocol::pusher::{
    self, App, Apps, ChannelKind, ClientEvents, ClientMessage, Envelope, PresenceMember, Subscribe,
};
use runtime::rate::TokenBucket;
use tokio::time::Instant;

/// Pusher's bound on client events: 10 a second per connection.
const CLIENT_EVENT_RATE: f32 = 10.0;

/// Each app's connections here, under its `max-connections`.
#[derive(Default)]
pub struct AppSeats(HashMap<String, Arc<AtomicUsize>>);

/// One connection of an app, given back when its session ends.
pub struct AppSeat(Arc<AtomicUsize>);

impl Drop for AppSeat {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl AppSeats {
    pub fn new(apps: &Apps) -> AppSeats {
        AppSeats(apps.iter().map(|app| (app.id.clone(), Arc::default())).collect())
    }

    /// A seat for a connection of `app`; none past its `max-connections`.
    pub fn take(&self, app: &App) -> Option<AppSeat> {
        let count = self.0.get(&app.id)?;
        let before = count.fetch_add(1, Relaxed);
        let seat = AppSeat(count.clone());
        (app.max_connections == 0 || before < app.max_connections).then_some(seat)
    }
}

/// How a Pusher client's session starts: its app, and its seat there.
pub struct PusherStart {
    pub app: Arc<App>,
    pub seat: AppSeat,
}

/// A Pusher client's side of its session.
pub struct PusherClient {
    pub app: Arc<App>,
    _seat: AppSeat,
    pub socket_id: String,
    /// Its presence channels, each with the user it joined as: its client
    /// events there carry that user.
    users: Vec<(String, String)>,
    /// The user it signed in as (`pusher:signin`): its own channel,
    /// `#server-to-user-ID`, is open to it alone.
    signed_in: Option<String>,
    client_events: TokenBucket,
}

/// What one message does.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Answer the client (a pong, an error), and nothing more.
    Reply(String),
    /// Join the channel: as a member when it is a presence channel (the
    /// router then tells the client the members); else the client hears
    /// `subscription_succeeded` once joined.
    Join {
        channel: Channel,
        pusher_channel: String,
        member: Option<PresenceMember>,
    },
    Leave(Channel),
    /// A client event, to the channel's other members.
    Relay {
        channel: Channel,
        envelope: Bytes,
    },
    /// A client event for the backend to allow first (EVENT=8).
    Check(Bytes),
    /// Bind the session to the app's user, and tell the client.
    SignIn {
        user: String,
        answer: String,
    },
    /// Any other event: the backend's, as a message.
    Backend(Bytes),
    Nothing,
}

fn reply_error(code: Option<u16>, message: &str) -> Step {
    Step::Reply(pusher::error(code, message))
}

impl PusherClient {
    pub fn new(start: PusherStart, socket_id: String, now: Instant) -> PusherClient {
        PusherClient {
            app: start.app,
            _seat: start.seat,
            socket_id,
            users: Vec::new(),
            signed_in: None,
            client_events: TokenBucket::full(CLIENT_EVENT_RATE, now),
        }
    }

    /// The fk channel of one of this app's channels.
    pub fn channel(&self, pusher_channel: &str) -> Option<Channel> {
        Channel::new(pusher::fk_name(&self.app.id, pusher_channel)).ok()
    }

    /// What `text` from the client does; `member` says whether the session
    /// is in an fk channel.
    pub fn step(&mut self, text: &[u8], now: Instant, member: impl Fn(&Channel) -> bool) -> Step {
        if text.len() > pusher::MAX_CLIENT_MESSAGE {
            return reply_error(Some(4009), "a message is 10 KiB at most");
        }
        let message = match ClientMessage::parse(text) {
            Ok(message) => message,
            Err(why) => return reply_error(None, why),
        };
        match message {
            ClientMessage::Ping => Step::Reply(pusher::pong()),
            ClientMessage::Pong => Step::Nothing,
            ClientMessage::Subscribe(ask) => self.subscribe(ask),
            ClientMessage::Unsubscribe { channel } => {
                self.users.retain(|(joined, _)| *joined != channel);
                self.channel(&channel).map_or(Step::Nothing, Step::Leave)
            }
            ClientMessage::Signin { auth, user_data } => self.sign_in(&auth, &user_data),
            ClientMessage::ClientEvent(envelope) => self.client_event(envelope, now, member),
            ClientMessage::Other(_) => Step::Backend(Bytes::copy_from_slice(text)),
        }
    }

    fn subscribe(&mut self, ask: Subscribe) -> Step {
        let refuse = |status, why: &str| Step::Reply(pusher::subscription_error(&ask.channel, status, why));
        let Some(channel) = self.channel(&ask.channel).filter(|_| pusher::valid_channel(&ask.channel)) else {
            return refuse(400, "Invalid channel name");
        };
        let kind = ChannelKind::of(&ask.channel);
        if kind == ChannelKind::ServerToUser {
            let own = self.signed_in.as_deref().map(|user| format!("{}{user}", pusher::SERVER_TO_USER));
            if own.as_deref() != Some(ask.channel.as_str()) {
                return refuse(403, "a user's channel is for that user, signed in");
            }
        }
        if kind.is_authorized() {
            let data = ask.channel_data.as_deref().filter(|_| kind == ChannelKind::Presence);
            let input = pusher::channel_signature_input(&self.socket_id, &ask.channel, data);
            if !ask.auth.as_deref().is_some_and(|auth| self.app.verify_auth(auth, &input)) {
                return refuse(401, "Invalid signature: the auth does not match this socket and channel");
            }
        }
        let member = match kind {
            ChannelKind::Presence => match ask.channel_data.as_deref().map(PresenceMember::parse) {
                Some(Ok(member)) => Some(member),
                Some(Err(why)) => return refuse(400, why),
                None => return refuse(400, "a presence channel needs channel_data"),
            },
            _ => None,
        };
        if let Some(member) = &member {
            self.users.retain(|(joined, _)| *joined != ask.channel);
            self.users.push((ask.channel.clone(), member.user_id.clone()));
        }
        Step::Join { channel, pusher_channel: ask.channel, member }
    }

    fn sign_in(&mut self, auth: &str, user_data: &str) -> Step {
        let input = pusher::user_signature_input(&self.socket_id, user_data);
        if !self.app.verify_auth(auth, &input) {
            return reply_error(Some(4009), "Invalid signature: the auth does not match this socket and user_data");
        }
        let data = serde_json::from_str::<serde_json::Value>(user_data).ok();
        let Some(user) = data.and_then(|data| pusher::user_id(data.get("id"))) else {
            return reply_error(Some(4009), "user_data names no id, 1 to 256 bytes");
        };
        self.signed_in = Some(user.clone());
        let answer = Envelope::new("pusher:signin_success", None, serde_json::json!({ "user_data": user_data }));
        Step::SignIn { user: pusher::fk_name(&self.app.id, &user), answer: answer.to_json() }
    }

    fn client_event(&mut self, mut envelope: Envelope, now: Instant, member: impl Fn(&Channel) -> bool) -> Step {
        let pusher_channel = envelope.channel.clone().unwrap_or_default();
        if self.app.client_events == ClientEvents::Off {
            return reply_error(None, "client events are off for this app (the app's client-events flag)");
        }
        if !ChannelKind::of(&pusher_channel).is_authorized() {
            return reply_error(None, "client events go to private and presence channels only");
        }
        let Some(channel) = self.channel(&pusher_channel).filter(|channel| member(channel)) else {
            return reply_error(None, "a client event goes to a channel the client is subscribed to");
        };
        if envelope.event.len() > 200 {
            return reply_error(None, "an event's name is 200 bytes at most");
        }
        if !self.client_events.take(CLIENT_EVENT_RATE, CLIENT_EVENT_RATE, now) {
            return reply_error(Some(4301), "Client event rejected due to rate limit");
        }
        envelope.user_id =
            self.users.iter().find(|(joined, _)| *joined == pusher_channel).map(|(_, user)| user.clone());
        let envelope = Bytes::from(envelope.to_json());
        match self.app.client_events {
            ClientEvents::Backend => Step::Check(envelope),
            _ => Step::Relay { channel, envelope },
        }
    }
}

impl PusherClient {
    /// What the backend's answer to a client event (EVENT=8) does: a 2xx
    /// relays it, with the reply's body as its new `data` if there is one
    /// (JSON, or else a string); anything else refuses it, and the client
    /// hears the status.
    pub fn checked(&self, envelope: &[u8], status: Option<u16>, body: &[u8]) -> Step {
        let Ok(mut event) = Envelope::parse(envelope) else { return Step::Nothing };
        let channel = event.channel.as_deref().and_then(|name| self.channel(name));
        match (status, channel) {
            (Some(200..=299), Some(channel)) => {
                if !body.is_empty() {
                    event.data = serde_json::from_slice(body)
                        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()));
                }
                Step::Relay { channel, envelope: Bytes::from(event.to_json()) }
            }
            (status, _) => {
                let why = match status {
                    Some(status) => format!("client event {} refused by the backend ({status})", event.event),
                    None => format!("client event {} not sent: the backend did not answer", event.event),
                };
                reply_error(None, &why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(flags: &str) -> PusherClient {
        let app: App = format!("7:key:secret{flags}").parse().unwrap();
        let seat = AppSeat(Arc::default());
        PusherClient::new(PusherStart { app: Arc::new(app), seat }, "1.2".into(), Instant::now())
    }

    #[test]
    fn an_apps_connections_stop_at_its_bound_and_come_back_as_they_end() {
        let apps = Apps::new(vec!["7:key:secret:max-connections=2".parse().unwrap(), "8:k8:s".parse().unwrap()]);
        let apps = apps.unwrap();
        let (capped, free) = (apps.by_id("7").unwrap(), apps.by_id("8").unwrap());
        let seats = AppSeats::new(&apps);
        let (first, second) = (seats.take(capped), seats.take(capped));
        assert!(first.is_some() && second.is_some());
        assert!(seats.take(capped).is_none(), "a third past 2");
        drop(first);
        assert!(seats.take(capped).is_some(), "one ended: room again");
        assert_eq!((0..100).filter_map(|_| seats.take(free)).count(), 100, "no bound of its own");
    }

    fn signed(client: &PusherClient, channel: &str, data: Option<&str>) -> String {
        let input = pusher::channel_signature_input("1.2", channel, data);
        format!("key:{}", client.app.sign(&input))
    }

    fn subscribe(channel: &str, auth: Option<&str>, data: Option<&str>) -> String {
        serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth, "channel_data": data}})
            .to_string()
    }

    #[test]
    fn a_private_or_presence_join_needs_the_apps_signature_for_this_socket() {
        let mut c = client("");
        let now = Instant::now();
        let step = c.step(subscribe("news", None, None).as_bytes(), now, |_| false);
        assert!(matches!(step, Step::Join { ref pusher_channel, member: None, .. } if pusher_channel == "news"));
        let good = signed(&c, "private-a", None);
        assert!(matches!(
            c.step(subscribe("private-a", Some(&good), None).as_bytes(), now, |_| false),
            Step::Join { .. }
        ));
        for (channel, auth) in [("private-a", None), ("private-b", Some(good.as_str())), ("private-a", Some("key:00"))]
        {
            let Step::Reply(refusal) = c.step(subscribe(channel, auth, None).as_bytes(), now, |_| false) else {
                panic!("{channel} {auth:?} joins")
            };
            assert!(refusal.contains("pusher:subscription_error") && refusal.contains("401"), "{refusal}");
        }
        let data = r#"{"user_id":"ann","user_info":{"name":"Ann"}}"#;
        let auth = signed(&c, "presence-r", Some(data));
        let step = c.step(subscribe("presence-r", Some(&auth), Some(data)).as_bytes(), now, |_| false);
        assert!(
            matches!(step, Step::Join { member: Some(PresenceMember { ref user_id, .. }), .. } if user_id == "ann")
        );
        let forged = r#"{"user_id":"boss"}"#;
        let step = c.step(subscribe("presence-r", Some(&auth), Some(forged)).as_bytes(), now, |_| false);
        assert!(matches!(step, Step::Reply(ref r) if r.contains("401")), "another user under ann's signature");
    }

    #[test]
    fn client_events_only_where_allowed_and_subscribed_within_the_rate() {
        let now = Instant::now();
        let event = |channel: &str| format!(r#"{{"event":"client-typing","channel":"{channel}","data":{{"x":1}}}}"#);
        let mut off = client("");
        assert!(
            matches!(off.step(event("private-a").as_bytes(), now, |_| true), Step::Reply(ref r) if r.contains("pusher:error"))
        );
        let mut on = client(":client-events");
        assert!(matches!(on.step(event("news").as_bytes(), now, |_| true), Step::Reply(_)), "public channel");
        assert!(matches!(on.step(event("private-a").as_bytes(), now, |_| false), Step::Reply(_)), "not subscribed");
        let Step::Relay { channel, envelope } = on.step(event("private-a").as_bytes(), now, |_| true) else {
            panic!("a relay")
        };
        assert_eq!(channel.as_str(), "pusher:7:private-a");
        assert_eq!(Envelope::parse(&envelope).unwrap().data, serde_json::json!({"x": 1}));
        let relayed =
            (0..20).filter(|_| matches!(on.step(event("private-a").as_bytes(), now, |_| true), Step::Relay { .. }));
        assert_eq!(relayed.count(), 9, "10 a second, the first one taken");
        let mut checked = client(":client-events=backend");
        let Step::Check(envelope) = checked.step(event("private-a").as_bytes(), now, |_| true) else {
            panic!("a check")
        };
        let Step::Relay { envelope: as_is, .. } = checked.checked(&envelope, Some(204), b"") else { panic!("a relay") };
        assert_eq!(as_is, envelope);
        let Step::Relay { envelope: rewritten, .. } = checked.checked(&envelope, Some(200), br#"{"x":2}"#) else {
            panic!("a relay")
        };
        assert_eq!(Envelope::parse(&rewritten).unwrap().data, serde_json::json!({"x": 2}));
        assert!(matches!(checked.checked(&envelope, Some(403), b""), Step::Reply(ref r) if r.contains("(403)")));
        assert!(matches!(checked.checked(&envelope, None, b""), Step::Reply(_)));
    }

    #[test]
    fn pings_leaves_sign_ins_and_the_rest() {
        let (mut c, now) = (client(""), Instant::now());
        assert!(
            matches!(c.step(br#"{"event":"pusher:ping","data":{}}"#, now, |_| false), Step::Reply(ref r) if r.contains("pusher:pong"))
        );
        let leave = br#"{"event":"pusher:unsubscribe","data":{"channel":"news"}}"#;
        assert!(matches!(c.step(leave, now, |_| false), Step::Leave(ref ch) if ch.as_str() == "pusher:7:news"));
        assert!(matches!(c.step(br#"{"event":"bid","data":"5"}"#, now, |_| false), Step::Backend(_)));
        assert!(matches!(c.step(b"not json", now, |_| false), Step::Reply(ref r) if r.contains("pusher:error")));
        let user_data = r#"{"id":"ann"}"#;
        let auth = format!("key:{}", c.app.sign(&pusher::user_signature_input("1.2", user_data)));
        let signin = serde_json::json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}});
        let step = c.step(signin.to_string().as_bytes(), now, |_| false);
        assert!(matches!(step, Step::SignIn { ref user, .. } if user == "pusher:7:ann"));
        let own = c.step(subscribe("#server-to-user-ann", None, None).as_bytes(), now, |_| false);
        assert!(matches!(own, Step::Join { .. }), "a signed-in user's own channel");
        let other = c.step(subscribe("#server-to-user-bob", None, None).as_bytes(), now, |_| false);
        assert!(matches!(other, Step::Reply(ref r) if r.contains("403")), "another user's channel");
        let forged =
            serde_json::json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": r#"{"id":"boss"}"#}});
        assert!(matches!(c.step(forged.to_string().as_bytes(), now, |_| false), Step::Reply(_)));
    }
}
