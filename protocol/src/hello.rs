//! The AUTH frame that opens a connection: who is calling, with which
//! token. A gateway sends fooking's layout (server id, worker id) with the
//! token after it; a backend marks its session area `backend` and sends
//! only the token. Without a router token, backends may skip it entirely,
//! as fooking's own clients do.
//!
//! A backend that marks it `backend+replies` instead gets exactly one reply
//! frame per command frame: the command's own reply (INFO, MEMBERS, ...),
//! else OK with the result or ERROR with why it failed.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Frame, FrameKind};

const BACKEND_ROLE: &[u8] = b"backend";
const BACKEND_WITH_REPLIES_ROLE: &[u8] = b"backend+replies";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    Gateway {
        server_id: i32,
        worker_id: i32,
        token: Bytes,
    },
    /// `replies`: a reply to every command, errors included.
    Backend {
        token: Bytes,
        replies: bool,
    },
}

impl Hello {
    pub fn to_frame(&self) -> Frame {
        match self {
            Hello::Gateway { server_id, worker_id, token } => {
                let mut data = BytesMut::with_capacity(8 + token.len());
                data.put_i32(*server_id);
                data.put_i32(*worker_id);
                data.extend_from_slice(token);
                Frame::new(FrameKind::Auth, Bytes::new(), data.freeze())
            }
            Hello::Backend { token, replies } => {
                let role = if *replies { BACKEND_WITH_REPLIES_ROLE } else { BACKEND_ROLE };
                Frame::new(FrameKind::Auth, Bytes::from_static(role), token.clone())
            }
        }
    }

    pub fn from_frame(frame: &Frame) -> Result<Hello, &'static str> {
        match &frame.sessions[..] {
            [] if frame.data.len() >= 8 => Ok(Hello::Gateway {
                server_id: i32::from_be_bytes(frame.data[..4].try_into().expect("4 bytes")),
                worker_id: i32::from_be_bytes(frame.data[4..8].try_into().expect("4 bytes")),
                token: frame.data.slice(8..),
            }),
            [] => Err("a gateway's AUTH carries its server id and worker id (8 bytes)"),
            role if role == BACKEND_ROLE => Ok(Hello::Backend { token: frame.data.clone(), replies: false }),
            role if role == BACKEND_WITH_REPLIES_ROLE => {
                Ok(Hello::Backend { token: frame.data.clone(), replies: true })
            }
            _ => Err("AUTH's session area is empty (a gateway), \"backend\" or \"backend+replies\""),
        }
    }

    pub fn token(&self) -> &[u8] {
        match self {
            Hello::Gateway { token, .. } | Hello::Backend { token, .. } => token,
        }
    }
}

/// Whether `given` is the expected token, in time independent of where
/// they differ.
pub fn token_matches(expected: &[u8], given: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(expected, given).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_round_trip() {
        for hello in [
            Hello::Gateway { server_id: 7, worker_id: 2, token: Bytes::from_static(b"s3cret") },
            Hello::Gateway { server_id: -1, worker_id: 0, token: Bytes::new() },
            Hello::Backend { token: Bytes::from_static(b"s3cret"), replies: false },
            Hello::Backend { token: Bytes::new(), replies: true },
        ] {
            assert_eq!(Hello::from_frame(&hello.to_frame()), Ok(hello));
        }
    }

    #[test]
    fn fookings_gateway_auth_is_a_gateway_without_a_token() {
        let frame = Frame::new(FrameKind::Auth, Bytes::new(), Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 0]));
        assert_eq!(Hello::from_frame(&frame), Ok(Hello::Gateway { server_id: 1, worker_id: 0, token: Bytes::new() }));
        assert!(Hello::from_frame(&Frame::new(FrameKind::Auth, Bytes::new(), Bytes::from_static(b"abc"))).is_err());
        assert!(Hello::from_frame(&Frame::new(FrameKind::Auth, Bytes::from_static(b"who"), Bytes::new())).is_err());
    }

    #[test]
    fn tokens_must_match_exactly() {
        assert!(token_matches(b"abc", b"abc"));
        assert!(!token_matches(b"abc", b"abd"));
        assert!(!token_matches(b"abc", b"ab"));
    }
}
