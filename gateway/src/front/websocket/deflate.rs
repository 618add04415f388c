//! permessage-deflate (RFC 7692), always without context takeover in
//! either direction: what a client may offer and what we agree to. The
//! compression itself is the `ws-deflate` crate's.

use ws_deflate::MIN_COMPRESS_WINDOW_BITS;
pub use ws_deflate::{compress, inflate, InflateError, MAX_WINDOW_BITS};

/// What was agreed for a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The window messages to the client are compressed with; `None`: they
    /// go uncompressed (the client asked for a window of 8).
    pub window_bits: Option<u8>,
    /// The `Sec-WebSocket-Extensions` value of the 101 response.
    pub response: String,
}

/// Accepts the first permessage-deflate offer among the client's
/// `Sec-WebSocket-Extensions` values that we can honour; `None` when there
/// is none (the connection is then uncompressed).
pub fn negotiate<'a>(header_values: impl IntoIterator<Item = &'a str>) -> Option<Agreed> {
    header_values.into_iter().flat_map(|value| value.split(',')).find_map(accept_offer)
}

fn accept_offer(offer: &str) -> Option<Agreed> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut seen = Vec::new();
    let mut server_window = None;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        // A parameter given twice declines the offer (§7).
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_max_window_bits", Some(bits)) => server_window = Some(window_bits(bits)?),
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(bits)) => {
                window_bits(bits)?;
            }
            _ => return None,
        }
        seen.push(name);
    }
    // We inflate with the largest window, which reads any smaller one; we
    // ask the client not to keep context, so inflating needs no state.
    let mut response = String::from("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    if let Some(bits) = server_window {
        response.push_str(&format!("; server_max_window_bits={bits}"));
    }
    let window_bits = server_window.unwrap_or(MAX_WINDOW_BITS);
    Some(Agreed { window_bits: (window_bits >= MIN_COMPRESS_WINDOW_BITS).then_some(window_bits), response })
}

fn window_bits(value: &str) -> Option<u8> {
    let bits: u8 = value.parse().ok()?;
    (8..=15).contains(&bits).then_some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_offer_we_can_honour_is_taken() {
        let agreed = negotiate(["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(agreed.window_bits, Some(15));
        assert_eq!(agreed.response, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        let small = negotiate(["permessage-deflate; server_max_window_bits=10"]).unwrap();
        assert_eq!(small.window_bits, Some(10));
        assert!(small.response.ends_with("; server_max_window_bits=10"));
        let tiny = negotiate(["permessage-deflate; server_max_window_bits=8"]).unwrap();
        assert_eq!(tiny.window_bits, None, "no raw deflate with 256 bytes: sent uncompressed");
        let second = negotiate(["x-webkit-deflate-frame, permessage-deflate; foo=1", "permessage-deflate"]).unwrap();
        assert_eq!(second.window_bits, Some(15), "unknown parameters decline that offer only");
        for declined in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "deflate-frame",
        ] {
            assert_eq!(negotiate([declined]), None, "{declined}");
        }
    }
}
