//! A session's events as FastCGI requests: the params fooking's backends
//! expect, plus the connection's own (address, upgrade URI, headers).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use router::protocol::SessionId;

use crate::fastcgi::{encode_request, ParamTooLarge};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Connect,
    Message { binary: bool },
    Close,
}

impl EventKind {
    /// fooking's EVENT values; a message has no EVENT param at all.
    fn code(self) -> Option<&'static [u8]> {
        match self {
            EventKind::Connect => Some(b"1"),
            EventKind::Message { .. } => None,
            EventKind::Close => Some(b"2"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub body: Bytes,
}

/// Params that stay the same for every event of one connection.
pub type Params = Vec<(Bytes, Bytes)>;

/// Names a client header must never reach the backend under: they would
/// pass for the gateway's own params (`HTTP_SESSIONID` with a Go-style
/// prefix) or are CGI's own (`HTTP_PROXY`, "httpoxy").
const RESERVED_HEADER_PARAMS: &[&str] =
    &["HTTP_SESSIONID", "HTTP_EVENT", "HTTP_PROXY", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"];

/// The CGI name of a client header: `X-Forwarded-For` is `HTTP_X_FORWARDED_FOR`.
pub fn header_param(name: &str) -> Option<String> {
    let param = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
    (!RESERVED_HEADER_PARAMS.contains(&param.as_str())).then_some(param)
}

/// Builds each event's request from the connection's fixed params.
pub struct EventEncoder {
    pub base: Arc<Params>,
    pub session_param: Bytes,
    pub event_param: Bytes,
}

impl EventEncoder {
    pub fn encode(&self, session: &SessionId, event: &Event) -> Result<BytesMut, ParamTooLarge> {
        let content_length = event.body.len().to_string();
        let content_type: &[u8] = match event.kind {
            EventKind::Message { binary: false } => b"text/plain; charset=utf-8",
            _ => b"application/octet-stream",
        };
        let mut per_event: Vec<(&[u8], &[u8])> = vec![(&self.session_param, session.as_bytes())];
        if let Some(code) = event.kind.code() {
            per_event.push((&self.event_param, code));
        }
        if !event.body.is_empty() {
            per_event.push((b"CONTENT_LENGTH", content_length.as_bytes()));
            per_event.push((b"CONTENT_TYPE", content_type));
        }
        let base = self.base.iter().map(|(n, v)| (n.as_ref(), v.as_ref()));
        let mut buf = BytesMut::with_capacity(512 + event.body.len());
        encode_request(&mut buf, crate::fastcgi::REQUEST_ID, base.chain(per_event), &event.body)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_become_cgi_params_but_never_reserved_ones() {
        assert_eq!(header_param("X-Forwarded-For").as_deref(), Some("HTTP_X_FORWARDED_FOR"));
        assert_eq!(header_param("SessionId"), None);
        assert_eq!(header_param("event"), None);
        assert_eq!(header_param("Proxy"), None);
    }
}
