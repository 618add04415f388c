//! The Pusher Channels protocol (version 7), as pusher-js, Laravel Echo
//! and the Pusher server SDKs speak it: `apps` (who may connect, with which
//! key and secret), the names (a socket id is a session id, a Pusher
//! channel an fk channel under its app), `event` (the client's and the
//! server's JSON messages) and `auth` (the signatures: a channel's, a
//! user's, an HTTP API call's and a webhook's).

mod apps;
mod auth;
mod event;

pub use apps::{App, Apps, ClientEvents};
pub use auth::{channel_signature_input, md5_hex, user_signature_input, ApiRefusal, ApiRequest, API_WINDOW_SECS};
pub use event::{
    connection_established, data_text, error, member_added, member_removed, pong, subscription_error,
    subscription_succeeded, user_id, ClientMessage, Envelope, PresenceMember, Subscribe, MAX_CLIENT_MESSAGE,
};

use crate::SessionId;

/// The channel names Pusher allows: letters, digits and `_-=@,.;`.
pub const MAX_CHANNEL_LEN: usize = 164;
/// What fk calls a Pusher app's channels: `pusher:APP:CHANNEL`, so two
/// apps never share one, and a native channel never is one.
const FK_PREFIX: &str = "pusher:";

/// A Pusher channel's kind, by its name's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    Public,
    /// `private-`, and `private-encrypted-` (relayed as opaque data).
    Private,
    Presence,
    /// `#server-to-user-ID`: a signed-in user's own, for the app's sends to it.
    ServerToUser,
}

/// Channels that keep their last event (Pusher's cache channels), and for
/// how long after it.
pub const CACHE_PREFIXES: [&str; 4] = ["cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-"];
pub const CACHE_TTL_SECS: u64 = 1800;

/// Whether `channel` (a Pusher name) keeps its last event.
pub fn is_cache(channel: &str) -> bool {
    CACHE_PREFIXES.iter().any(|prefix| channel.starts_with(prefix))
}

/// What a client joining an empty cache channel hears.
pub fn cache_miss(channel: &str) -> String {
    Envelope::new("pusher:cache_miss", Some(channel), serde_json::Value::String("{}".into())).to_json()
}

/// The channel a signed-in user's connections join, named by its id.
pub const SERVER_TO_USER: &str = "#server-to-user-";

impl ChannelKind {
    pub fn of(channel: &str) -> ChannelKind {
        if channel.starts_with(SERVER_TO_USER) {
            ChannelKind::ServerToUser
        } else if channel.starts_with("presence-") {
            ChannelKind::Presence
        } else if channel.starts_with("private-") {
            ChannelKind::Private
        } else {
            ChannelKind::Public
        }
    }

    /// Whether a subscribe needs a signature, and client events are allowed.
    pub fn is_authorized(self) -> bool {
        matches!(self, ChannelKind::Private | ChannelKind::Presence)
    }
}

/// Whether `channel` is a name Pusher accepts.
pub fn valid_channel(channel: &str) -> bool {
    let channel = channel.strip_prefix('#').filter(|_| channel.starts_with(SERVER_TO_USER)).unwrap_or(channel);
    !channel.is_empty()
        && channel.len() <= MAX_CHANNEL_LEN
        && channel.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b))
}

/// The fk name of an app's Pusher channel, or of its user (bound, so a
/// user of one app is not one of another).
pub fn fk_name(app_id: &str, channel: &str) -> String {
    format!("{FK_PREFIX}{app_id}:{channel}")
}

/// The app and Pusher channel an fk channel stands for, if it is one.
pub fn split_fk_channel(fk: &str) -> Option<(&str, &str)> {
    fk.strip_prefix(FK_PREFIX)?.split_once(':')
}

/// The prefix of all of an app's fk channels.
pub fn fk_prefix(app_id: &str) -> String {
    format!("{FK_PREFIX}{app_id}:")
}

/// A session's socket id in Pusher's form, `HIGH.LOW`: the id's two
/// halves in decimal, so one maps to the other without a table.
pub fn socket_id(session: &SessionId) -> String {
    let value = u64::from_str_radix(session.as_str(), 16).expect("a session id is hex");
    format!("{}.{}", value >> 32, value & 0xffff_ffff)
}

/// The session a socket id names, if it is well formed.
pub fn session_of_socket(socket_id: &str) -> Option<SessionId> {
    let (high, low) = socket_id.split_once('.')?;
    let digits = |part: &str| !part.is_empty() && part.len() <= 10 && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(high) || !digits(low) {
        return None;
    }
    let (high, low) = (high.parse::<u64>().ok()?, low.parse::<u64>().ok()?);
    (high <= u32::MAX as u64 && low <= u32::MAX as u64).then(|| SessionId::from_u64(high << 32 | low))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_id_is_its_session_and_back() {
        for value in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            let session = SessionId::from_u64(value);
            let socket = socket_id(&session);
            assert_eq!(session_of_socket(&socket), Some(session), "{socket}");
        }
        assert_eq!(socket_id(&SessionId::from_u64(1 << 32 | 7)), "1.7");
        for bad in ["", "1", "1.", ".1", "1.2.3", "a.1", "4294967296.1", "-1.2", "+1.2", "00000000001.1"] {
            assert_eq!(session_of_socket(bad), None, "{bad}");
        }
    }

    #[test]
    fn channels_have_a_kind_and_an_fk_name_per_app() {
        assert_eq!(ChannelKind::of("presence-room"), ChannelKind::Presence);
        assert_eq!(ChannelKind::of("private-encrypted-x"), ChannelKind::Private);
        assert_eq!(ChannelKind::of("cache-x"), ChannelKind::Public);
        assert_eq!(fk_name("7", "presence-room"), "pusher:7:presence-room");
        assert_eq!(split_fk_channel("pusher:7:presence-room"), Some(("7", "presence-room")));
        assert_eq!(split_fk_channel("presence-room"), None);
        assert!(valid_channel("private-a_b-c=d@e,f.g;h"));
        assert!(valid_channel("#server-to-user-ann"));
        assert_eq!(ChannelKind::of("#server-to-user-ann"), ChannelKind::ServerToUser);
        for bad in ["", "#news", "a b", "a:b", "a/b", "é", &"x".repeat(MAX_CHANNEL_LEN + 1)] {
            assert!(!valid_channel(bad), "{bad}");
        }
    }
}
