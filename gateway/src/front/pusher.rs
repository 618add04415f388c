//! Where Pusher clients come in: a WebSocket upgrade at `/app/KEY`
//! (`?protocol=7`) is a Pusher session of the app with that key. An
//! unknown key or protocol is refused after the upgrade, as Pusher does:
//! `pusher:error` with its code, then a close frame with the same code,
//! which tells pusher-js not to try again (4000-4099).

use std::sync::Arc;

use http::Uri;
use protocol::pusher::{self, App, Apps};

use crate::base::message::Message;
use crate::upstream::fastcgi::{ParamBlock, ParamTooLarge};

/// The Pusher protocol versions served: pusher-js speaks 7.
const PROTOCOLS: std::ops::RangeInclusive<u32> = 5..=7;

/// Why a Pusher client is refused: Pusher's code and words.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub code: u16,
    pub message: String,
}

impl Refused {
    /// `pusher:error`, then the close frame.
    pub fn messages(&self) -> [Message; 2] {
        let close = Message::Close { code: self.code, reason: self.message.clone().into() };
        [Message::text(pusher::error(Some(self.code), &self.message)), close]
    }
}

/// Whether an upgrade to `uri` is a Pusher client's: the app it connects
/// to, or why it is refused. `None`: not a Pusher path (or no app is set).
pub fn client_of(apps: &Apps, uri: &Uri) -> Option<Result<Arc<App>, Refused>> {
    let key = uri.path().strip_prefix("/app/").filter(|_| !apps.is_empty())?;
    let refuse = |code, message: String| Some(Err(Refused { code, message }));
    let Some(app) = apps.by_key(key) else {
        return refuse(4001, format!("App key {key} not in this cluster"));
    };
    let query = uri.query().unwrap_or("");
    let version = query.split('&').find_map(|pair| pair.strip_prefix("protocol="));
    match version.map(str::parse::<u32>) {
        None => refuse(4008, "No protocol version supplied".into()),
        Some(Err(_)) => refuse(4006, "Invalid version string format".into()),
        Some(Ok(version)) if !PROTOCOLS.contains(&version) => {
            refuse(4007, format!("Unsupported protocol version {version}"))
        }
        Some(Ok(_)) => Some(Ok(app.clone())),
    }
}

/// What a Pusher session's every event tells its backend besides the
/// upgrade's own params: `PUSHER_APP_ID` and `PUSHER_SOCKET_ID`.
pub fn params(params: &mut ParamBlock, app: &App, session: &protocol::SessionId) -> Result<(), ParamTooLarge> {
    params.push(b"PUSHER_APP_ID", app.id.as_bytes())?;
    params.push(b"PUSHER_SOCKET_ID", pusher::socket_id(session).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pusher_path_names_a_known_app_and_protocol() {
        let apps = Apps::new(vec!["7:key:secret".parse().unwrap()]).unwrap();
        let at = |uri: &str| {
            client_of(&apps, &uri.parse().unwrap()).map(|r| r.map(|app| app.id.clone()).map_err(|e| e.code))
        };
        assert_eq!(at("/app/key?protocol=7&client=js&version=8.4.0"), Some(Ok("7".into())));
        assert_eq!(at("/app/nope?protocol=7"), Some(Err(4001)));
        assert_eq!(at("/app/key"), Some(Err(4008)));
        assert_eq!(at("/app/key?protocol=x"), Some(Err(4006)));
        assert_eq!(at("/app/key?protocol=8"), Some(Err(4007)));
        assert_eq!(at("/chat"), None);
        assert_eq!(client_of(&Apps::default(), &"/app/key?protocol=7".parse().unwrap()).map(|r| r.is_ok()), None);
    }
}
