//! A CGI response as a FastCGI app writes it to STDOUT: header lines, a
//! blank line, the body. `Content-Length` is optional; the body may have
//! come in any number of STDOUT records.

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
        let mut body = stdout.slice(head_len + sep_len..);
        let declared = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        if let Some(len) = declared {
            body.truncate(len);
        }
        Ok(CgiResponse { status, headers, body })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body goes to the client as a binary frame only when the app says
    /// it is octet-stream; anything else is text.
    pub fn is_binary(&self) -> bool {
        self.header("content-type").is_some_and(|ct| ct.trim().starts_with("application/octet-stream"))
    }

    /// An empty body sends nothing, unless the app said `Content-Length: 0`
    /// outright: then it asked for an empty message.
    pub fn says_empty_message(&self) -> bool {
        self.body.is_empty() && self.header("content-length").is_some_and(|len| len.trim() == "0")
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
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
    fn only_an_explicit_zero_length_asks_for_an_empty_message() {
        assert!(CgiResponse::parse(Bytes::from_static(b"Content-Length: 0\r\n\r\n")).unwrap().says_empty_message());
        assert!(!CgiResponse::parse(Bytes::from_static(b"Content-Type: text/plain\r\n\r\n"))
            .unwrap()
            .says_empty_message());
        assert!(!CgiResponse::parse(Bytes::new()).unwrap().says_empty_message());
    }

    #[test]
    fn empty_stdout_is_an_empty_reply_and_headerless_output_is_an_error() {
        assert!(CgiResponse::parse(Bytes::new()).unwrap().body.is_empty());
        assert!(CgiResponse::parse(Bytes::from_static(b"just text")).is_err());
    }
}
