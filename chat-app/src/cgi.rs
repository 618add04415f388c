//! The one CGI response every protocol of the app answers with: a status,
//! headers, and a JSON or binary body (none sends the client nothing).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Json(Value),
    /// Sent to the client as a binary frame.
    Binary(Vec<u8>),
}

impl Response {
    /// 200 with nothing for the client.
    pub fn none() -> Response {
        Response { status: 200, headers: Vec::new(), body: Body::None }
    }

    pub fn json(body: Value) -> Response {
        Response::status_json(200, body)
    }

    pub fn status_json(status: u16, body: Value) -> Response {
        Response { status, headers: Vec::new(), body: Body::Json(body) }
    }

    pub fn binary(body: Vec<u8>) -> Response {
        Response { status: 200, headers: Vec::new(), body: Body::Binary(body) }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// As the app writes it to STDOUT: `Status`, the headers, the body's
    /// `Content-Type`, a blank line, the body.
    pub fn render(&self) -> Vec<u8> {
        let mut head = format!("Status: {}\r\n", self.status);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let content_type = match self.body {
            Body::Binary(_) => "application/octet-stream",
            Body::None | Body::Json(_) => "application/json",
        };
        head.push_str(&format!("Content-Type: {content_type}\r\n\r\n"));
        let mut out = head.into_bytes();
        match &self.body {
            Body::None => {}
            Body::Json(value) => out.extend_from_slice(value.to_string().as_bytes()),
            Body::Binary(bytes) => out.extend_from_slice(bytes),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_status_headers_type_and_body() {
        let rendered =
            Response::status_json(401, serde_json::json!({"code": 99})).with_header("X-Meta-Uid", "7").render();
        assert_eq!(rendered, b"Status: 401\r\nX-Meta-Uid: 7\r\nContent-Type: application/json\r\n\r\n{\"code\":99}");
        assert_eq!(Response::none().render(), b"Status: 200\r\nContent-Type: application/json\r\n\r\n");
        let binary = Response::binary(vec![0, 255]).render();
        assert!(binary.ends_with(b"Content-Type: application/octet-stream\r\n\r\n\x00\xff"));
    }
}
