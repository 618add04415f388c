//! Pusher's signatures, all HMAC-SHA256 in hex under the app's secret:
//! a channel's (`KEY:SIG` over `SOCKET_ID:CHANNEL[:CHANNEL_DATA]`), a
//! user's sign-in (over `SOCKET_ID::user::USER_DATA`), an HTTP API call's
//! (over `METHOD\nPATH\nSORTED_QUERY`, with `body_md5` and a timestamp),
//! and a webhook's (over its body).

use md5::{Digest, Md5};

use super::apps::{App, Apps};
use crate::signing::Signer;

/// How far an API call's `auth_timestamp` may be from the router's clock.
pub const API_WINDOW_SECS: u64 = 600;

pub fn channel_signature_input(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

pub fn user_signature_input(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

pub fn md5_hex(body: &[u8]) -> String {
    Md5::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

impl App {
    fn signer(&self) -> Signer {
        Signer::new(Some(&self.secret))
    }

    /// The hex signature of `input`: a webhook's `X-Pusher-Signature`.
    pub fn sign(&self, input: &str) -> String {
        self.signer().sign(input)
    }

    /// A client's `auth`, `KEY:SIGNATURE`: whether this app's backend
    /// signed `input`, compared in constant time.
    pub fn verify_auth(&self, auth: &str, input: &str) -> bool {
        auth.split_once(':').is_some_and(|(key, signature)| key == self.key && self.signer().verify(input, signature))
    }
}

impl App {
    /// The query that signs an API call as the Pusher SDKs sign one, at
    /// `now` (seconds since the epoch): for callers that are no SDK.
    pub fn signed_query(&self, method: &str, path: &str, body: &[u8], now: u64) -> String {
        let mut query = vec![
            ("auth_key".to_owned(), self.key.clone()),
            ("auth_timestamp".to_owned(), now.to_string()),
            ("auth_version".to_owned(), "1.0".to_owned()),
        ];
        if !body.is_empty() {
            query.push(("body_md5".into(), md5_hex(body)));
        }
        let signature = self.sign(&ApiRequest { method, path, query: &query, body }.string_to_sign());
        let pairs: Vec<String> = query.iter().map(|(key, value)| format!("{key}={value}")).collect();
        format!("{}&auth_signature={signature}", pairs.join("&"))
    }
}

/// An HTTP API call as it came: the query decoded, in any order.
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Why a call is refused: Pusher's status and text.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiRefusal {
    pub status: u16,
    pub message: String,
}

fn refused(status: u16, message: impl Into<String>) -> ApiRefusal {
    ApiRefusal { status, message: message.into() }
}

impl ApiRequest<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The app `app_id` names, if the call is signed with its key and
    /// secret, within [`API_WINDOW_SECS`] of `now`, over this very body.
    pub fn verify<'apps>(&self, apps: &'apps Apps, app_id: &str, now: u64) -> Result<&'apps App, ApiRefusal> {
        let app = apps.by_id(app_id).ok_or_else(|| refused(404, format!("Unknown app_id {app_id}")))?;
        if self.param("auth_key") != Some(app.key.as_str()) {
            return Err(refused(401, "Unknown auth_key"));
        }
        let stamp = self.param("auth_timestamp").and_then(|t| t.parse::<u64>().ok());
        if stamp.is_none_or(|stamp| stamp.abs_diff(now) > API_WINDOW_SECS) {
            return Err(refused(
                401,
                format!(
                    "Timestamp expired: given {:?}, now {now}; allowed {API_WINDOW_SECS} s either way",
                    self.param("auth_timestamp")
                ),
            ));
        }
        if self.param("auth_version") != Some("1.0") {
            return Err(refused(401, "auth_version 1.0 only"));
        }
        let md5_given = self.param("body_md5");
        let md5_wrong = md5_given != Some(md5_hex(self.body).as_str());
        if (!self.body.is_empty() || md5_given.is_some()) && md5_wrong {
            return Err(refused(401, "body_md5 does not match the body"));
        }
        let Some(signature) = self.param("auth_signature") else {
            return Err(refused(401, "auth_signature missing"));
        };
        if !app.signer().verify(&self.string_to_sign(), signature) {
            return Err(refused(
                401,
                "Invalid signature: it is HMAC-SHA256 of METHOD\\nPATH\\nSORTED_QUERY under the app's secret",
            ));
        }
        Ok(app)
    }

    /// `METHOD\nPATH\nk=v&...`, the query but its signature, by key.
    fn string_to_sign(&self) -> String {
        let mut pairs: Vec<(String, &str)> = self
            .query
            .iter()
            .filter(|(key, _)| key != "auth_signature")
            .map(|(key, value)| (key.to_ascii_lowercase(), value.as_str()))
            .collect();
        pairs.sort();
        let query: Vec<String> = pairs.iter().map(|(key, value)| format!("{key}={value}")).collect();
        format!("{}\n{}\n{}", self.method.to_ascii_uppercase(), self.path, query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps() -> Apps {
        Apps::new(vec!["7:key:secret".parse().unwrap()]).unwrap()
    }

    /// A call signed as the SDKs sign one, its query read back.
    fn signed(method: &str, path: &str, body: &[u8], stamp: u64) -> Vec<(String, String)> {
        let query = apps().by_id("7").unwrap().signed_query(method, path, body, stamp);
        query.split('&').map(|pair| pair.split_once('=').unwrap()).map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn a_signed_call_passes_and_every_forgery_is_refused() {
        let (apps, body, now) = (apps(), br#"{"name":"e","channel":"c","data":"{}"}"#.as_slice(), 1_700_000_000);
        let query = signed("POST", "/apps/7/events", body, now);
        let call = |query: &[(String, String)], body: &[u8], now: u64, path: &str| {
            ApiRequest { method: "POST", path, query, body }.verify(&apps, "7", now).map(|app| app.id.clone())
        };
        assert_eq!(call(&query, body, now + 600, "/apps/7/events"), Ok("7".into()));
        assert_eq!(call(&query, body, now + 601, "/apps/7/events").unwrap_err().status, 401, "old");
        assert_eq!(call(&query, b"{}", now, "/apps/7/events").unwrap_err().status, 401, "another body");
        assert_eq!(call(&query, body, now, "/apps/7/batch_events").unwrap_err().status, 401, "another path");
        let mut forged = query.clone();
        forged.last_mut().unwrap().1.replace_range(0..1, "0");
        forged.last_mut().unwrap().1.replace_range(1..2, "0");
        assert_eq!(call(&forged, body, now, "/apps/7/events").unwrap_err().status, 401, "signature");
        let unsigned: Vec<_> = query[..query.len() - 1].to_vec();
        assert_eq!(call(&unsigned, body, now, "/apps/7/events").unwrap_err().status, 401);
        let other = ApiRequest { method: "POST", path: "/apps/8/events", query: &query, body };
        assert_eq!(other.verify(&apps, "8", now).unwrap_err().status, 404);
        let get = signed("GET", "/apps/7/channels", b"", now);
        let request = ApiRequest { method: "GET", path: "/apps/7/channels", query: &get, body: b"" };
        assert!(request.verify(&apps, "7", now).is_ok());
    }

    #[test]
    fn channel_auth_is_the_apps_signature_of_the_socket_and_channel() {
        let app = &apps().by_id("7").unwrap().clone();
        let input = channel_signature_input("1.2", "private-a", None);
        let auth = format!("key:{}", app.sign(&input));
        assert!(app.verify_auth(&auth, &input));
        assert!(!app.verify_auth(&auth, &channel_signature_input("1.3", "private-a", None)));
        assert!(!app.verify_auth(&auth.replacen("key", "other", 1), &input));
        assert!(!app.verify_auth("key", &input));
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
