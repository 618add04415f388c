//! What a backend sees of a session's event: the FastCGI request and all
//! its params, in one place. The static ones (CGI's and `--param`s), the
//! connection's own (where the client is, what it asked for, its headers),
//! the session meta the backend set, then the event's (SESSIONID, EVENT,
//! the body's type and length).

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, Uri};
use protocol::SessionId;

use super::fastcgi::{encode_request, ParamBlock, ParamTooLarge, REQUEST_ID};

/// Params each connection sets for itself; a static param of that name is ignored.
const CONNECTION_PARAMS: &[&str] =
    &["REMOTE_ADDR", "REMOTE_PORT", "REQUEST_URI", "DOCUMENT_URI", "QUERY_STRING", "REQUEST_METHOD"];

/// The params of every request: CGI's own, then `configured` (`--param`),
/// the later of two with one name winning. A name a connection sets for
/// itself is left out, with a warning.
pub fn static_params<'a>(
    configured: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<ParamBlock, ParamTooLarge> {
    let defaults = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", concat!("fk-gateway/", env!("CARGO_PKG_VERSION"))),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ];
    let mut chosen: Vec<(&str, &str)> = Vec::new();
    for (name, value) in defaults.into_iter().chain(configured) {
        if CONNECTION_PARAMS.contains(&name) {
            tracing::warn!(param = name, "set per connection; the static value is ignored");
            continue;
        }
        chosen.retain(|(n, _)| *n != name);
        chosen.push((name, value));
    }
    let mut block = ParamBlock::default();
    for (name, value) in chosen {
        block.push(name.as_bytes(), value.as_bytes())?;
    }
    Ok(block.compact())
}

/// The params of a file in nginx's syntax: `fastcgi_param NAME VALUE;`
/// lines, a value quoted or not, `#` comments, nginx's `if_not_empty`
/// ignored. A value with an nginx variable (`$remote_addr`) is nginx's to
/// fill in for each request, so the gateway refuses it.
pub fn read_param_file(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).map_err(|err| anyhow::anyhow!("--param-file {}: {err}", path.display()))?;
    let mut params = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| anyhow::anyhow!("--param-file {}:{}: {why}: {line}", path.display(), n + 1);
        let rest = line.strip_prefix("fastcgi_param").ok_or_else(|| bad("expected fastcgi_param NAME VALUE;"))?;
        let rest = rest.trim().strip_suffix(';').ok_or_else(|| bad("no ; at the end"))?;
        let (name, value) = rest.trim().split_once(char::is_whitespace).ok_or_else(|| bad("no value"))?;
        let value = value.trim();
        let value = value.strip_suffix("if_not_empty").map_or(value, str::trim_end);
        let value = match (value.strip_prefix('"'), value.strip_prefix('\'')) {
            (Some(quoted), _) => quoted.strip_suffix('"'),
            (_, Some(quoted)) => quoted.strip_suffix('\''),
            _ => Some(value),
        }
        .ok_or_else(|| bad("an unclosed quote"))?;
        if value.contains('$') {
            return Err(bad("a value with an nginx variable is nginx's to fill in, not a static param"));
        }
        params.push((name.to_owned(), value.to_owned()));
    }
    Ok(params)
}

/// The session meta after a response: its `X-Meta-*` headers set `META_*`
/// params, an empty value forgets one. `None` when it names none; with
/// the params that did not fit.
pub fn merged_meta(meta: &ParamBlock, headers: &[(String, String)]) -> Option<(ParamBlock, Vec<ParamTooLarge>)> {
    let mut updates = headers.iter().filter_map(|(name, value)| {
        let rest = name.get(..META_HEADER.len()).filter(|p| p.eq_ignore_ascii_case(META_HEADER))?;
        let rest = &name[rest.len()..];
        Some((format!("META_{}", rest.to_ascii_uppercase().replace('-', "_")), value.as_str()))
    });
    let first = updates.next()?;
    let mut merged: Vec<(String, String)> = meta.pairs_owned();
    for (name, value) in std::iter::once(first).chain(updates) {
        merged.retain(|(n, _)| *n != name);
        if !value.is_empty() {
            merged.push((name, value.to_owned()));
        }
    }
    let mut block = ParamBlock::default();
    let dropped = merged.iter().filter_map(|(name, value)| block.push(name.as_bytes(), value.as_bytes()).err());
    let dropped = dropped.collect();
    Some((block.compact(), dropped))
}

/// A response header that sets session meta: `X-Meta-User-Id: 42` is `META_USER_ID=42`.
const META_HEADER: &str = "x-meta-";

/// Where the client is: `REMOTE_ADDR` and `REMOTE_PORT`.
pub fn client_address(params: &mut ParamBlock, remote: SocketAddr) -> Result<(), ParamTooLarge> {
    params.push(b"REMOTE_ADDR", remote.ip().to_string().as_bytes())?;
    params.push(b"REMOTE_PORT", remote.port().to_string().as_bytes())
}

/// What a WebSocket client asked for: `REQUEST_URI`, `DOCUMENT_URI`, `QUERY_STRING`.
pub fn request_target(params: &mut ParamBlock, uri: &Uri) -> Result<(), ParamTooLarge> {
    params.push(b"REQUEST_URI", uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/").as_bytes())?;
    params.push(b"DOCUMENT_URI", uri.path().as_bytes())?;
    params.push(b"QUERY_STRING", uri.query().unwrap_or("").as_bytes())
}

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
    /// The client asks to join the channel named in the event's body.
    Subscribe,
    /// A presence channel (named in the body) got its first member.
    Occupied,
    /// A presence channel (named in the body) lost its last member.
    Vacated,
    /// A Pusher client event (its envelope the body) for the backend to
    /// allow or refuse (an app with `client-events=backend`).
    ClientEvent,
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
            EventKind::Subscribe => Some(b"5"),
            EventKind::Occupied => Some(b"6"),
            EventKind::Vacated => Some(b"7"),
            EventKind::ClientEvent => Some(b"8"),
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
    transport_param: Vec<u8>,
    channel_param: Vec<u8>,
}

impl EventEncoder {
    /// `prefix` goes before SESSIONID and EVENT (`HTTP_` for Go backends).
    pub fn new(static_params: ParamBlock, prefix: &str) -> EventEncoder {
        let name = |base: &str| format!("{prefix}{base}").into_bytes();
        EventEncoder {
            static_params,
            session_param: name("SESSIONID"),
            event_param: name("EVENT"),
            transport_param: name("TRANSPORT"),
            channel_param: name("CHANNEL"),
        }
    }

    /// The CGI name of a client header (`X-Forwarded-For` is
    /// `HTTP_X_FORWARDED_FOR`); none for a reserved name, which would pass
    /// for the gateway's own SESSIONID or EVENT under any prefix.
    pub fn header_param(&self, name: &str) -> Option<String> {
        let param = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        let ours = [&self.session_param, &self.event_param, &self.transport_param, &self.channel_param]
            .iter()
            .any(|own| own.as_slice() == param.as_bytes());
        (!ours && !RESERVED_HEADER_PARAMS.contains(&param.as_str())).then_some(param)
    }

    /// A client's headers as `HTTP_*` params, but `left_out`, reserved
    /// names and those the operator set as static params (say
    /// `HTTP_X_API_KEY`), which a client never overrides. Repeated
    /// headers are joined (cookies with `; `).
    pub fn header_params(
        &self,
        params: &mut ParamBlock,
        headers: &HeaderMap,
        left_out: &[HeaderName],
    ) -> Result<(), ParamTooLarge> {
        for name in headers.keys().filter(|name| !left_out.contains(name)) {
            let Some(param) = self.header_param(name.as_str()) else { continue };
            if self.static_params.get(param.as_bytes()).is_some() {
                continue;
            }
            let separator = if name == header::COOKIE { "; " } else { ", " };
            let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
            params.push(param.as_bytes(), values.join(separator).as_bytes())?;
        }
        Ok(())
    }

    /// Says which transport other than WebSocket or TCP carries a session
    /// (`TRANSPORT=sse`), under the same prefix as SESSIONID.
    pub fn transport_param(&self, params: &mut ParamBlock, transport: &str) -> Result<(), ParamTooLarge> {
        params.push(&self.transport_param, transport.as_bytes())
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
        // A subscribe or an occupancy names its channel in a param, and has no body.
        let stdin: &[u8] = match event.kind {
            EventKind::Subscribe | EventKind::Occupied | EventKind::Vacated => {
                push(&self.channel_param, &event.body);
                &[]
            }
            // A client event names its Pusher channel too, and is JSON.
            EventKind::ClientEvent => {
                let channel = protocol::pusher::Envelope::parse(&event.body).ok().and_then(|e| e.channel);
                push(&self.channel_param, channel.unwrap_or_default().as_bytes());
                push(b"CONTENT_TYPE", b"application/json");
                &event.body
            }
            _ => &event.body,
        };
        if !stdin.is_empty() {
            push(b"CONTENT_LENGTH", stdin.len().to_string().as_bytes());
        }
        let blocks: Vec<&ParamBlock> = session_blocks.iter().copied().chain([&own]).collect();
        self.encode_with(&blocks, stdin)
    }

    /// A plain HTTP request forwarded as CGI: the static params, the
    /// connection's, then its method and body's length and type; no
    /// SESSIONID or EVENT, as it is no session's event.
    pub fn encode_http(
        &self,
        connection: &ParamBlock,
        method: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> BytesMut {
        let mut own = ParamBlock::default();
        let mut push = |name: &[u8], value: &[u8]| own.push(name, value).expect("small params");
        push(b"REQUEST_METHOD", method.as_bytes());
        push(b"CONTENT_LENGTH", body.len().to_string().as_bytes());
        if let Some(content_type) = content_type {
            push(b"CONTENT_TYPE", content_type.as_bytes());
        }
        self.encode_with(&[connection, &own], body)
    }

    /// A request with the static params, then `blocks`, and `stdin`.
    fn encode_with(&self, blocks: &[&ParamBlock], stdin: &[u8]) -> BytesMut {
        let mut buf = BytesMut::with_capacity(256 + self.static_params.encoded().len() + stdin.len());
        let all: Vec<&ParamBlock> = std::iter::once(&self.static_params).chain(blocks.iter().copied()).collect();
        encode_request(&mut buf, REQUEST_ID, &all, stdin);
        buf
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_param_file_in_nginx_syntax_gives_plain_values_only() {
        let dir = std::env::temp_dir().join(format!("fk-param-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("params.conf");
        let text = "# shared\nfastcgi_param ROUTER_HTTP http://127.0.0.1:9011;\n  fastcgi_param TEAM \"a b\" if_not_empty; # x\n\n";
        std::fs::write(&file, text).unwrap();
        let expected = [("ROUTER_HTTP", "http://127.0.0.1:9011"), ("TEAM", "a b")].map(|(n, v)| (n.into(), v.into()));
        assert_eq!(super::read_param_file(&file).unwrap(), expected);
        for bad in ["fastcgi_param A $remote_addr;", "fastcgi_param A b", "set $x 1;", "fastcgi_param A \"b;"] {
            std::fs::write(&file, bad).unwrap();
            assert!(super::read_param_file(&file).is_err(), "{bad}");
        }
    }

    use super::*;

    fn param(block: &ParamBlock, name: &str) -> Option<String> {
        block.get(name.as_bytes()).map(|value| String::from_utf8(value.to_vec()).unwrap())
    }

    #[test]
    fn meta_headers_set_and_forget_params() {
        let mut meta = ParamBlock::default();
        meta.push(b"META_ROOM", b"1").unwrap();
        let headers = [("X-Meta-User-Id", "42"), ("x-meta-room", ""), ("Content-Type", "text/plain")];
        let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let (merged, dropped) = merged_meta(&meta, &headers).unwrap();
        assert_eq!(merged.pairs_owned(), [("META_USER_ID".to_owned(), "42".to_owned())]);
        assert!(dropped.is_empty());
        assert!(merged_meta(&meta, &headers[2..]).is_none(), "no X-Meta header, no change");
    }

    #[test]
    fn static_params_take_the_last_of_a_name_and_never_a_connections_own() {
        let block =
            static_params([("SCRIPT_FILENAME", "/a.php"), ("REMOTE_ADDR", "1.2.3.4"), ("SCRIPT_FILENAME", "/b.php")]);
        let block = block.unwrap();
        assert_eq!(param(&block, "SCRIPT_FILENAME").as_deref(), Some("/b.php"));
        assert_eq!(param(&block, "REMOTE_ADDR"), None, "a connection sets it");
        assert_eq!(param(&block, "GATEWAY_INTERFACE").as_deref(), Some("CGI/1.1"));
    }

    #[test]
    fn a_connections_params_say_where_the_client_is_what_it_asked_and_its_headers() {
        let encoder = EventEncoder::new(static_params([("HTTP_X_API_KEY", "ours")]).unwrap(), "");
        let mut params = ParamBlock::default();
        client_address(&mut params, "10.0.0.1:4000".parse().unwrap()).unwrap();
        request_target(&mut params, &"/chat?room=1".parse().unwrap()).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in [("cookie", "a=1"), ("cookie", "b=2"), ("x-api-key", "theirs"), ("sessionid", "forged")] {
            headers.append(HeaderName::from_static(name), value.parse().unwrap());
        }
        headers.append(header::USER_AGENT, "left out".parse().unwrap());
        encoder.header_params(&mut params, &headers, &[header::USER_AGENT]).unwrap();
        let got = |name| param(&params, name);
        assert_eq!((got("REMOTE_ADDR").unwrap(), got("REMOTE_PORT").unwrap()), ("10.0.0.1".into(), "4000".into()));
        assert_eq!(
            [got("REQUEST_URI"), got("DOCUMENT_URI"), got("QUERY_STRING")].map(Option::unwrap),
            ["/chat?room=1", "/chat", "room=1"]
        );
        assert_eq!(got("HTTP_COOKIE").as_deref(), Some("a=1; b=2"));
        assert_eq!(got("HTTP_X_API_KEY"), None, "the operator's static param stands");
        assert_eq!((got("HTTP_SESSIONID"), got("HTTP_USER_AGENT")), (None, None));
    }

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
