//! Pusher apps: an id (in the HTTP API's paths), a key (in the client's
//! URL and the API's `auth_key`), a secret (the signatures), and what the
//! app allows. Given as `ID:KEY:SECRET[:FLAG]...`; the secret never shows
//! in a log or a `Debug`.

use std::fmt;
use std::sync::Arc;

/// What an app lets its clients send on private and presence channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientEvents {
    /// Refused (Pusher's default for a new app).
    #[default]
    Off,
    /// Relayed to the channel's other members, as Pusher does.
    Relay,
    /// Sent to the FastCGI backend first, which may refuse or rewrite them.
    Backend,
}

#[derive(Clone, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub key: String,
    pub secret: String,
    pub client_events: ClientEvents,
    /// Connections of this app one gateway holds at most (0: no bound of
    /// its own), as Pusher's plan quota: past it, 4004.
    pub max_connections: usize,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &"<hidden>")
            .field("client_events", &self.client_events)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl std::str::FromStr for App {
    type Err = String;

    /// `ID:KEY:SECRET`, then any of `:client-events`,
    /// `:client-events=backend` and `:max-connections=N`.
    fn from_str(spec: &str) -> Result<App, String> {
        let mut parts = spec.split(':');
        let usage = "a Pusher app is ID:KEY:SECRET[:client-events[=backend]][:max-connections=N]";
        let (Some(id), Some(key), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(usage.into());
        };
        let plain = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        };
        if !plain(id) || !plain(key) {
            return Err(format!("{usage}: the id and key are 1 to 64 of A-Z, a-z, 0-9, - and _"));
        }
        if secret.is_empty() {
            return Err(format!("{usage}: the secret is empty"));
        }
        let mut app = App {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            client_events: ClientEvents::Off,
            max_connections: 0,
        };
        for flag in parts {
            match flag.split_once('=') {
                None if flag == "client-events" => app.client_events = ClientEvents::Relay,
                Some(("client-events", "backend")) => app.client_events = ClientEvents::Backend,
                Some(("max-connections", n)) => {
                    app.max_connections = n.parse().map_err(|_| format!("{usage}: max-connections={n}"))?
                }
                _ => return Err(format!("{usage}: unknown flag {flag}")),
            }
        }
        Ok(app)
    }
}

/// Every app of a deployment, looked up by key (a client's URL, an API
/// call's `auth_key`) or id (an API call's path).
#[derive(Clone, Debug, Default)]
pub struct Apps(Arc<[Arc<App>]>);

impl Apps {
    /// Refuses two apps with one id or one key.
    pub fn new(apps: Vec<App>) -> Result<Apps, String> {
        for (i, app) in apps.iter().enumerate() {
            if apps[..i].iter().any(|other| other.id == app.id || other.key == app.key) {
                return Err(format!("two Pusher apps share the id {} or the key {}", app.id, app.key));
            }
        }
        Ok(Apps(apps.into_iter().map(Arc::new).collect()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.0.iter()
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.0.iter().find(|app| app.key == key)
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.0.iter().find(|app| app.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_parse_with_their_flags_and_hide_their_secret() {
        let app: App = "1:key:s3cret:client-events:max-connections=5".parse().unwrap();
        assert_eq!((app.id.as_str(), app.key.as_str(), app.secret.as_str()), ("1", "key", "s3cret"));
        assert_eq!((app.client_events, app.max_connections), (ClientEvents::Relay, 5));
        assert!(!format!("{app:?}").contains("s3cret"));
        let backend: App = "2:k2:s:client-events=backend".parse().unwrap();
        assert_eq!(backend.client_events, ClientEvents::Backend);
        for bad in [
            "",
            "1:key",
            "1:key:",
            "1:k y:s",
            "1:key:s:nope",
            "1:key:s:client-events=x",
            "1:key:s:max-connections=x",
            "a/b:k:s",
        ] {
            assert!(bad.parse::<App>().is_err(), "{bad}");
        }
        let apps = Apps::new(vec![app.clone(), backend]).unwrap();
        assert_eq!(apps.by_key("k2").map(|a| a.id.as_str()), Some("2"));
        assert_eq!(apps.by_id("1").map(|a| a.key.as_str()), Some("key"));
        assert!(apps.by_key("nope").is_none());
        assert!(Apps::new(vec![app.clone(), app]).is_err());
    }
}
