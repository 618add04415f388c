//! A CGI response as a FastCGI app writes it to STDOUT: header lines, a
//! blank line, the body. The body may have come in any number of STDOUT
//! records. `Content-Length` is optional and, as in fooking, picks that many
//! bytes at `Content-Offset` (negative: from the end); a range outside the
//! body sends nothing.

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl CgiResponse {
    pub fn parse(stdout: Bytes) -> Result<CgiResponse, String> {
        if stdout.is_empty() {
            return Ok(CgiResponse { status: 200, headers: Vec::new(), body: stdout });
        }
        let (head_len, sep_len) = find_header_end(&stdout).ok_or("response has no blank line after its headers")?;
        let head = std::str::from_utf8(&stdout[..head_len]).map_err(|_| "response headers are not UTF-8")?;
        let mut status = 200;
        let mut headers = Vec::new();
        for line in head.lines().filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').ok_or_else(|| format!("malformed header line {line:?}"))?;
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("status") {
                let code = value.split_whitespace().next().unwrap_or_default();
                status = code.parse().map_err(|_| format!("bad Status header {value:?}"))?;
            }
            headers.push((name.to_owned(), value.to_owned()));
        }
        let mut response = CgiResponse { status, headers, body: Bytes::new() };
        let body = stdout.slice(head_len + sep_len..);
        let length = response.number("content-length")?;
        let offset = response.number("content-offset")?.unwrap_or(0);
        match body_range(body.len(), length, offset) {
            Some(range) => response.body = body.slice(range),
            None => tracing::warn!(
                offset,
                ?length,
                body = body.len(),
                "Content-Offset and Content-Length fall outside the body: nothing sent"
            ),
        }
        Ok(response)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn number(&self, name: &str) -> Result<Option<i64>, String> {
        let Some(value) = self.header(name) else { return Ok(None) };
        value.parse().map(Some).map_err(|_| format!("bad {name} header {value:?}"))
    }

    /// The body goes to the client as a binary frame only when the app says
    /// it is octet-stream; anything else is text.
    pub fn is_binary(&self) -> bool {
        self.header("content-type").is_some_and(|ct| ct.trim().starts_with("application/octet-stream"))
    }

    /// An empty body sends nothing, whatever `Content-Length` says (fooking
    /// does the same), unless the app asked for an empty message outright
    /// with `X-Send-Empty: 1`.
    pub fn says_empty_message(&self) -> bool {
        self.body.is_empty() && self.header(SEND_EMPTY_HEADER).is_some_and(|v| v == "1")
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The header by which an app asks for an empty message.
const SEND_EMPTY_HEADER: &str = "x-send-empty";

/// The bytes of a body of `total` bytes that the client gets: `length`
/// bytes (all that follow when absent) from `offset`, counted from the end
/// when negative. A declared length past the body's end is cut to it (an
/// app that printed less than it declared); a range that starts outside the
/// body, or one from an offset that runs past the end, sends nothing, as
/// in fooking.
fn body_range(total: usize, length: Option<i64>, offset: i64) -> Option<std::ops::Range<usize>> {
    let total = total as i64;
    let start = if offset < 0 { total + offset } else { offset };
    if !(0..=total).contains(&start) {
        return None;
    }
    let end = match length {
        Some(length) if length < 0 => return None,
        Some(length) if offset != 0 && start.saturating_add(length) > total => return None,
        Some(length) => start.saturating_add(length).min(total),
        None => total,
    };
    Some(start as usize..end as usize)
}

fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_headers_and_body() {
        let r = CgiResponse::parse(Bytes::from_static(
            b"Status: 403 Forbidden\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01",
        ))
        .unwrap();
        assert_eq!(r.status, 403);
        assert!(r.is_binary());
        assert!(!r.is_success());
        assert_eq!(&r.body[..], b"\x00\x01");
    }

    #[test]
    fn php_fpm_style_headers_are_text_with_status_200() {
        let r = CgiResponse::parse(Bytes::from_static(
            b"X-Powered-By: PHP/8.2\r\nContent-type: text/html; charset=UTF-8\r\n\r\nhello",
        ))
        .unwrap();
        assert_eq!((r.status, r.is_binary(), &r.body[..]), (200, false, &b"hello"[..]));
    }

    #[test]
    fn content_length_is_optional_and_honoured() {
        let r = CgiResponse::parse(Bytes::from_static(b"Content-Length: 2\n\nabcdef")).unwrap();
        assert_eq!(&r.body[..], b"ab");
        let r = CgiResponse::parse(Bytes::from_static(b"Content-Type: text/plain\n\nabcdef")).unwrap();
        assert_eq!(&r.body[..], b"abcdef");
    }

    #[test]
    fn content_offset_picks_the_bytes_as_fooking_does() {
        let body = |head: &str| CgiResponse::parse(Bytes::from(format!("{head}\n\nabcdef"))).map(|r| r.body);
        assert_eq!(body("Content-Length: 2\nContent-Offset: 3").unwrap(), "de");
        assert_eq!(body("Content-Length: 2\nContent-Offset: -3").unwrap(), "de");
        assert_eq!(body("Content-Offset: 4").unwrap(), "ef", "without a length, the rest");
        assert_eq!(body("Content-Length: 9").unwrap(), "abcdef", "a length past the end is cut to it");
        assert_eq!(body("Content-Length: 4\nContent-Offset: 3").unwrap(), "", "past the end from an offset");
        assert_eq!(body("Content-Length: 4\nContent-Offset: -3").unwrap(), "", "past the end from the end");
        assert_eq!(body("Content-Offset: -7").unwrap(), "");
        assert_eq!(body("Content-Length: -1").unwrap(), "");
        assert!(body("Content-Length: two").is_err(), "a malformed header is a broken response");
        assert_eq!(body(&format!("Content-Length: {}\nContent-Offset: 1", i64::MAX)).unwrap(), "", "no overflow");
        assert_eq!(body(&format!("Content-Length: {}", i64::MAX)).unwrap(), "abcdef");
        assert_eq!(body(&format!("Content-Offset: {}", i64::MIN)).unwrap(), "");
    }

    #[test]
    fn only_an_explicit_header_asks_for_an_empty_message() {
        let says = |head: &[u8]| CgiResponse::parse(Bytes::copy_from_slice(head)).unwrap().says_empty_message();
        assert!(says(b"X-Send-Empty: 1\r\n\r\n"));
        assert!(says(b"Content-Length: 0\r\nX-Send-Empty: 1\r\n\r\n"));
        assert!(!says(b"Content-Length: 0\r\n\r\n"), "fooking-style backends always set Content-Length");
        assert!(!says(b"Content-Type: text/plain\r\n\r\n"));
        assert!(!says(b""));
    }

    #[test]
    fn empty_stdout_is_an_empty_reply_and_headerless_output_is_an_error() {
        assert!(CgiResponse::parse(Bytes::new()).unwrap().body.is_empty());
        assert!(CgiResponse::parse(Bytes::from_static(b"just text")).is_err());
    }
}
