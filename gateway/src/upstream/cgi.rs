//! What a backend sees of a session's event: the FastCGI request, with
//! the params fooking's backends expect (the static ones, SESSIONID,
//! EVENT, the body's type and length) after the connection's own blocks.

use bytes::{Bytes, BytesMut};
use protocol::SessionId;

use super::fastcgi::{encode_request, ParamBlock, REQUEST_ID};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Connect,
    Message {
        binary: bool,
    },
    Close,
    /// The client dropped; its session waits for it to resume.
    Offline,
    /// The client resumed its session.
    Online,
}

impl EventKind {
    /// fooking's EVENT values, and ours for resume (3, 4); a message has
    /// no EVENT param at all.
    fn code(self) -> Option<&'static [u8]> {
        match self {
            EventKind::Connect => Some(b"1"),
            EventKind::Message { .. } => None,
            EventKind::Close => Some(b"2"),
            EventKind::Offline => Some(b"3"),
            EventKind::Online => Some(b"4"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub body: Bytes,
}

/// Names a client header must never reach the backend under: they would
/// pass for the gateway's own params (`HTTP_SESSIONID` with a Go-style
/// prefix) or are CGI's own (`HTTP_PROXY`, "httpoxy"). The names that
/// `--param-prefix` gives SESSIONID and EVENT are reserved too.
const RESERVED_HEADER_PARAMS: &[&str] =
    &["HTTP_SESSIONID", "HTTP_EVENT", "HTTP_PROXY", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"];

/// Builds each event's request. Holds what is fixed for the gateway's
/// life: the static params and the names of SESSIONID and EVENT.
pub struct EventEncoder {
    pub static_params: ParamBlock,
    session_param: Vec<u8>,
    event_param: Vec<u8>,
}

impl EventEncoder {
    /// `prefix` goes before SESSIONID and EVENT (`HTTP_` for Go backends).
    pub fn new(static_params: ParamBlock, prefix: &str) -> EventEncoder {
        let name = |base: &str| format!("{prefix}{base}").into_bytes();
        EventEncoder { static_params, session_param: name("SESSIONID"), event_param: name("EVENT") }
    }

    /// The CGI name of a client header (`X-Forwarded-For` is
    /// `HTTP_X_FORWARDED_FOR`); none for a reserved name, which would pass
    /// for the gateway's own SESSIONID or EVENT under any prefix.
    pub fn header_param(&self, name: &str) -> Option<String> {
        let param = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        let ours = [&self.session_param, &self.event_param].iter().any(|own| own.as_slice() == param.as_bytes());
        (!ours && !RESERVED_HEADER_PARAMS.contains(&param.as_str())).then_some(param)
    }

    /// The whole request: static params, the session's blocks, then the event's own.
    pub fn encode(&self, session_blocks: &[&ParamBlock], session: &SessionId, event: &Event) -> BytesMut {
        let mut own = ParamBlock::default();
        let mut push = |name: &[u8], value: &[u8]| own.push(name, value).expect("event params are small");
        push(b"REQUEST_METHOD", b"POST");
        push(&self.session_param, session.as_bytes());
        if let Some(code) = event.kind.code() {
            push(&self.event_param, code);
        }
        // A message's type matters even when it is empty; its length only
        // when it is not (as fooking sends it).
        if let EventKind::Message { binary } = event.kind {
            let content_type: &[u8] = if binary { b"application/octet-stream" } else { b"text/plain; charset=utf-8" };
            push(b"CONTENT_TYPE", content_type);
        }
        if !event.body.is_empty() {
            push(b"CONTENT_LENGTH", event.body.len().to_string().as_bytes());
        }
        let blocks: Vec<&ParamBlock> = session_blocks.iter().copied().chain([&own]).collect();
        self.encode_with(&blocks, &event.body)
    }

    /// A request with the static params, then `blocks`, and `stdin`.
    pub fn encode_with(&self, blocks: &[&ParamBlock], stdin: &[u8]) -> BytesMut {
        let mut buf = BytesMut::with_capacity(256 + self.static_params.encoded().len() + stdin.len());
        let all: Vec<&ParamBlock> = std::iter::once(&self.static_params).chain(blocks.iter().copied()).collect();
        encode_request(&mut buf, REQUEST_ID, &all, stdin);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_become_cgi_params_but_never_reserved_ones() {
        let plain = EventEncoder::new(ParamBlock::default(), "");
        assert_eq!(plain.header_param("X-Forwarded-For").as_deref(), Some("HTTP_X_FORWARDED_FOR"));
        assert_eq!(plain.header_param("SessionId"), None);
        assert_eq!(plain.header_param("event"), None);
        assert_eq!(plain.header_param("Proxy"), None);
        let prefixed = EventEncoder::new(ParamBlock::default(), "HTTP_FK_");
        assert_eq!(prefixed.header_param("Fk-Sessionid"), None, "would pass for HTTP_FK_SESSIONID");
        assert_eq!(prefixed.header_param("FK-EVENT"), None);
        assert_eq!(prefixed.header_param("SessionId"), None);
        assert_eq!(prefixed.header_param("Fk-Other").as_deref(), Some("HTTP_FK_OTHER"));
    }
}
