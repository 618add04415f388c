//! Moving a session between gateways, for a client that resumes it on
//! another gateway than the one that held it.
//!
//! Every frame of a move names one session in its session area. Its data
//! starts with the new gateway's [`GatewayId`] (8 bytes), so a router can
//! pass it on without looking further:
//!
//! | frame | data after the id |
//! |---|---|
//! | RESUME | a [`ResumeAsk`]: `u32` token generation, the token's MAC (a gateway sends only this; the router adds the id) |
//! | MOVING, MOVED | nothing |
//! | HANDOVER | the [`SessionState`] |
//! | RESUME_REFUSED | one [`Refusal`] byte |

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A gateway as the routers know it: the ids its AUTH gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GatewayId {
    pub server_id: i32,
    pub worker_id: i32,
}

impl GatewayId {
    pub const LEN: usize = 8;

    /// `payload` addressed to this gateway.
    pub fn address(self, payload: &[u8]) -> Bytes {
        let mut data = BytesMut::with_capacity(Self::LEN + payload.len());
        data.put_i32(self.server_id);
        data.put_i32(self.worker_id);
        data.put_slice(payload);
        data.freeze()
    }

    /// The gateway a frame's data is addressed to, and the rest.
    pub fn split(data: &Bytes) -> Result<(GatewayId, Bytes), Truncated> {
        if data.len() < Self::LEN {
            return Err(Truncated);
        }
        let mut head = &data[..Self::LEN];
        let id = GatewayId { server_id: head.get_i32(), worker_id: head.get_i32() };
        Ok((id, data.slice(Self::LEN..)))
    }
}

impl std::fmt::Display for GatewayId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.server_id, self.worker_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hand-over data is truncated or malformed")]
pub struct Truncated;

/// What a RESUME asks for (after the id, if addressed): the token's
/// generation, and its MAC as proof that a client holds the token. The
/// holding gateway checks the proof under the resume secret, so a peer
/// that holds no token cannot pull a session by guessing the generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeAsk {
    pub generation: u32,
    /// The token's MAC, as the token spells it (hex).
    pub proof: Bytes,
}

impl ResumeAsk {
    /// The MAC's length in the token: HMAC-SHA256, in hex.
    pub const PROOF_LEN: usize = 64;

    pub fn encode(&self) -> Bytes {
        let mut data = BytesMut::with_capacity(4 + self.proof.len());
        data.put_u32(self.generation);
        data.put_slice(&self.proof);
        data.freeze()
    }

    pub fn decode(data: &Bytes) -> Result<ResumeAsk, Truncated> {
        if data.len() != 4 + Self::PROOF_LEN {
            return Err(Truncated);
        }
        let generation = u32::from_be_bytes(data[..4].try_into().expect("4 bytes"));
        Ok(ResumeAsk { generation, proof: data.slice(4..) })
    }
}

/// Why a session cannot be resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Refusal {
    /// No gateway holds it: its grace period ended, or it never existed.
    Expired = 1,
    /// The token was used already: the session has moved on to a newer one.
    Reused = 2,
    /// The hand-over failed on the way (a gateway or router went away).
    Failed = 3,
}

impl Refusal {
    pub fn from_u8(value: u8) -> Refusal {
        match value {
            1 => Refusal::Expired,
            2 => Refusal::Reused,
            _ => Refusal::Failed,
        }
    }
}

/// One message for the client, as the gateway queued or wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub binary: bool,
    pub data: Bytes,
}

/// Everything a session is besides its connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionState {
    /// The token generation the new gateway hands out next.
    pub generation: u32,
    /// The sequence number the next message written to the client gets.
    pub next_seq: u64,
    /// The last messages written, numbered up to `next_seq - 1`, for a
    /// client that did not get them all before its connection dropped.
    pub written: Vec<Outgoing>,
    /// Messages never written.
    pub queued: Vec<Outgoing>,
    /// The session meta, as FastCGI name-value pairs.
    pub meta: Bytes,
    pub channels: Vec<String>,
    pub user: Option<String>,
}

impl SessionState {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u32(self.generation);
        out.put_u64(self.next_seq);
        for list in [&self.written, &self.queued] {
            out.put_u32(list.len() as u32);
            for message in list {
                out.put_u8(message.binary as u8);
                put_bytes(&mut out, &message.data);
            }
        }
        put_bytes(&mut out, &self.meta);
        out.put_u32(self.channels.len() as u32);
        for channel in &self.channels {
            put_bytes(&mut out, channel.as_bytes());
        }
        match &self.user {
            Some(user) => {
                out.put_u8(1);
                put_bytes(&mut out, user.as_bytes());
            }
            None => out.put_u8(0),
        }
        out.freeze()
    }

    pub fn decode(mut data: Bytes) -> Result<SessionState, Truncated> {
        let src = &mut data;
        let generation = take(src, 4)?.get_u32();
        let next_seq = take(src, 8)?.get_u64();
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            for _ in 0..take(src, 4)?.get_u32() {
                let binary = take(src, 1)?[0] != 0;
                list.push(Outgoing { binary, data: take_bytes(src)? });
            }
        }
        let [written, queued] = lists;
        let meta = take_bytes(src)?;
        let mut channels = Vec::new();
        for _ in 0..take(src, 4)?.get_u32() {
            channels.push(take_text(src)?);
        }
        let user = match take(src, 1)?[0] {
            0 => None,
            _ => Some(take_text(src)?),
        };
        if !src.is_empty() {
            return Err(Truncated);
        }
        Ok(SessionState { generation, next_seq, written, queued, meta, channels, user })
    }
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

fn take(src: &mut Bytes, n: usize) -> Result<Bytes, Truncated> {
    if src.len() < n {
        return Err(Truncated);
    }
    Ok(src.split_to(n))
}

fn take_bytes(src: &mut Bytes) -> Result<Bytes, Truncated> {
    let len = take(src, 4)?.get_u32() as usize;
    take(src, len)
}

fn take_text(src: &mut Bytes) -> Result<String, Truncated> {
    String::from_utf8(take_bytes(src)?.to_vec()).map_err(|_| Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SessionState {
        SessionState {
            generation: 7,
            next_seq: 42,
            written: vec![Outgoing { binary: false, data: Bytes::from_static(b"hi") }],
            queued: vec![
                Outgoing { binary: true, data: Bytes::from_static(&[0, 255]) },
                Outgoing { binary: false, data: Bytes::new() },
            ],
            meta: Bytes::from_static(b"\x04\x03USERbob"),
            channels: vec!["room-1".into(), "lobby".into()],
            user: Some("u-9".into()),
        }
    }

    #[test]
    fn state_round_trips() {
        assert_eq!(SessionState::decode(state().encode()), Ok(state()));
        let empty = SessionState::default();
        assert_eq!(SessionState::decode(empty.encode()), Ok(empty));
    }

    #[test]
    fn truncated_or_padded_state_is_an_error() {
        let encoded = state().encode();
        for cut in 0..encoded.len() {
            assert_eq!(SessionState::decode(encoded.slice(..cut)), Err(Truncated), "cut at {cut}");
        }
        let padded = [&encoded[..], b"x"].concat();
        assert_eq!(SessionState::decode(padded.into()), Err(Truncated));
    }

    #[test]
    fn resume_asks_round_trip_and_need_their_proof() {
        let ask = ResumeAsk { generation: 3, proof: Bytes::from("a".repeat(ResumeAsk::PROOF_LEN)) };
        assert_eq!(ResumeAsk::decode(&ask.encode()), Ok(ask));
        assert_eq!(ResumeAsk::decode(&Bytes::from_static(&[0, 0, 0, 3])), Err(Truncated), "a bare generation");
    }

    #[test]
    fn addressed_data_splits_back() {
        let to = GatewayId { server_id: -3, worker_id: 99 };
        let data = to.address(b"rest");
        assert_eq!(GatewayId::split(&data), Ok((to, Bytes::from_static(b"rest"))));
        assert_eq!(GatewayId::split(&data.slice(..7)), Err(Truncated));
    }
}
