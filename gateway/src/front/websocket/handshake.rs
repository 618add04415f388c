//! The server's half of the opening handshake (RFC 6455 §4.2.2) that
//! hyper's upgrade leaves to us: the accept key, and which extension the
//! connection speaks.

use base64::Engine;
use sha1::{Digest, Sha1};

/// Proves to the client that we read its key (§1.3).
pub fn accept_key(key: &[u8]) -> String {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let digest = Sha1::new().chain_update(key).chain_update(GUID).finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_accept_key_of_the_rfc_example() {
        assert_eq!(super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
