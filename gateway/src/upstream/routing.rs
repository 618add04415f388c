//! Routing by key: which backend pool a client message goes to. Rules are
//! tried in order; a message no rule matches, and every connect and close
//! event, goes to the `default` pool.
//!
//! `FIELD:PATTERN=POOL` matches a JSON text message whose top-level FIELD
//! equals PATTERN, or starts with it when PATTERN ends in `*` (`.*` also
//! works). `bin:LOW-HIGH=POOL` matches a binary message whose first four
//! bytes, as a big-endian number, fall in LOW..=HIGH (protocol numbers).

use std::str::FromStr;

use serde_json::Value;

use super::cgi::{Event, EventKind};
use crate::upstream::fastcgi::{Pool, Upstreams};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Field { field: String, value: String, prefix: bool },
    Number { low: u32, high: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    matcher: Matcher,
    pub pool: String,
}

impl FromStr for Route {
    type Err = String;

    fn from_str(s: &str) -> Result<Route, String> {
        let (rule, pool) = s.rsplit_once('=').ok_or_else(|| format!("{s}: expected KEY:PATTERN=POOL"))?;
        let (key, pattern) = rule.split_once(':').ok_or_else(|| format!("{s}: expected KEY:PATTERN=POOL"))?;
        if pool.is_empty() || key.is_empty() {
            return Err(format!("{s}: empty key or pool"));
        }
        let matcher = if key == "bin" {
            let (low, high) = pattern.split_once('-').unwrap_or((pattern, pattern));
            let number = |n: &str| n.trim().parse::<u32>().map_err(|_| format!("{s}: {n} is not a number"));
            Matcher::Number { low: number(low)?, high: number(high)? }
        } else {
            let stem = pattern.strip_suffix(".*").or_else(|| pattern.strip_suffix('*'));
            Matcher::Field { field: key.to_owned(), value: stem.unwrap_or(pattern).to_owned(), prefix: stem.is_some() }
        };
        Ok(Route { matcher, pool: pool.to_owned() })
    }
}

#[derive(Debug, Default)]
pub struct Routes {
    rules: Vec<Route>,
}

impl Routes {
    /// Checks that every route names a pool that has backends.
    pub fn new(rules: Vec<Route>, upstreams: &Upstreams) -> Result<Routes, String> {
        if let Some(route) = rules.iter().find(|r| upstreams.pool(&r.pool).is_none()) {
            return Err(format!("route to pool {:?}, which has no --backend {0}=ADDR", route.pool));
        }
        Ok(Routes { rules })
    }

    pub fn pool_for<'a>(&self, upstreams: &'a Upstreams, event: &Event) -> &'a Pool {
        self.pool_name(event).and_then(|name| upstreams.pool(name)).unwrap_or_else(|| upstreams.default_pool())
    }

    fn pool_name(&self, event: &Event) -> Option<&str> {
        let EventKind::Message { binary } = event.kind else { return None };
        if self.rules.is_empty() {
            return None;
        }
        let json = (!binary).then(|| serde_json::from_slice::<Value>(&event.body).ok()).flatten();
        let number =
            (binary && event.body.len() >= 4).then(|| u32::from_be_bytes(event.body[..4].try_into().expect("4 bytes")));
        let matched = self.rules.iter().find(|route| match &route.matcher {
            Matcher::Field { field, value, prefix } => {
                let found = json.as_ref().and_then(|j| j.get(field));
                let text = found.map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
                text.is_some_and(|t| if *prefix { t.starts_with(value.as_str()) } else { t == *value })
            }
            Matcher::Number { low, high } => number.is_some_and(|n| (*low..=*high).contains(&n)),
        });
        matched.map(|route| route.pool.as_str())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn message(body: &[u8], binary: bool) -> Event {
        Event { kind: EventKind::Message { binary }, body: Bytes::copy_from_slice(body) }
    }

    fn routes(rules: &[&str]) -> Routes {
        Routes { rules: rules.iter().map(|r| r.parse().unwrap()).collect() }
    }

    #[test]
    fn json_fields_match_exactly_or_by_prefix() {
        let routes = routes(&["type:chat.*=chat", "cmd:login=auth", "code:7=game"]);
        assert_eq!(routes.pool_name(&message(br#"{"type":"chat.msg"}"#, false)), Some("chat"));
        assert_eq!(routes.pool_name(&message(br#"{"cmd":"login"}"#, false)), Some("auth"));
        assert_eq!(routes.pool_name(&message(br#"{"cmd":"login2"}"#, false)), None);
        assert_eq!(routes.pool_name(&message(br#"{"code":7}"#, false)), Some("game"), "numbers match as text");
        assert_eq!(routes.pool_name(&message(b"not json", false)), None);
    }

    #[test]
    fn binary_messages_match_by_protocol_number() {
        let routes = routes(&["bin:1001-1007=auth", "bin:3001-3008=chat"]);
        assert_eq!(routes.pool_name(&message(&1003u32.to_be_bytes(), true)), Some("auth"));
        assert_eq!(routes.pool_name(&message(&[&3008u32.to_be_bytes()[..], b"rest"].concat(), true)), Some("chat"));
        assert_eq!(routes.pool_name(&message(&2001u32.to_be_bytes(), true)), None);
        assert_eq!(routes.pool_name(&message(b"ab", true)), None, "too short for a number");
    }

    #[test]
    fn connect_and_close_events_are_never_routed() {
        let routes = routes(&["type:*=chat"]);
        assert_eq!(routes.pool_name(&Event { kind: EventKind::Connect, body: Bytes::new() }), None);
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!("type=chat".parse::<Route>().is_err());
        assert!("bin:x-9=chat".parse::<Route>().is_err());
        assert!("type:chat=".parse::<Route>().is_err());
    }
}
