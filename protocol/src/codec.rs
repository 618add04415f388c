use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::Frame;

const HEADER_LEN: usize = 8;
const BINARY_FLAG: u32 = 1 << 31;

/// Default bound on a frame's data: larger frames close the connection.
pub const DEFAULT_MAX_DATA: usize = 1 << 20;

/// Bound on a whole frame (session area and data) before AUTH: an AUTH
/// frame is a role and a token, so an unauthenticated peer makes us hold
/// no more than this.
pub const MAX_BEFORE_AUTH: usize = 4 << 10;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame data of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Socket framing for [`Frame`]s, with a bound on the data length, and on
/// the session area and data together, so a hostile or broken peer cannot
/// make us buffer without limit.
#[derive(Clone, Debug)]
pub struct FrameCodec {
    max_data: usize,
    /// The session area and the data together.
    max_body: usize,
}

impl FrameCodec {
    /// Data up to `max_data`, with a session area up to the 64 KiB its
    /// 16-bit length can say.
    pub fn new(max_data: usize) -> FrameCodec {
        FrameCodec { max_data, max_body: max_data + u16::MAX as usize }
    }

    /// For a peer that has not authenticated yet: whole frames up to
    /// [`MAX_BEFORE_AUTH`]; [`FrameCodec::authenticated`] lifts it.
    pub fn before_auth() -> FrameCodec {
        FrameCodec { max_data: MAX_BEFORE_AUTH, max_body: MAX_BEFORE_AUTH }
    }

    /// The bounds once the peer has shown its token.
    pub fn authenticated(&mut self, max_data: usize) {
        *self = FrameCodec::new(max_data);
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_DATA)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let kind = u16::from_be_bytes([src[0], src[1]]);
        let slen = u16::from_be_bytes([src[2], src[3]]) as usize;
        let raw_len = u32::from_be_bytes([src[4], src[5], src[6], src[7]]);
        let len = (raw_len & !BINARY_FLAG) as usize;
        if len > self.max_data {
            return Err(FrameError::TooLarge { len, max: self.max_data });
        }
        if slen + len > self.max_body {
            return Err(FrameError::TooLarge { len: slen + len, max: self.max_body });
        }
        let total = HEADER_LEN + slen + len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let sessions = src.split_to(slen).freeze();
        let data = src.split_to(len).freeze();
        Ok(Some(Frame { raw_kind: kind, binary: raw_len & BINARY_FLAG != 0, sessions, data }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated { buffered: src.len() }),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(&frame, dst)
    }
}

fn encode_frame(frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
    let slen = u16::try_from(frame.sessions.len())
        .map_err(|_| FrameError::TooLarge { len: frame.sessions.len(), max: u16::MAX as usize })?;
    let max = (BINARY_FLAG - 1) as usize;
    if frame.data.len() > max {
        return Err(FrameError::TooLarge { len: frame.data.len(), max });
    }
    let flag = if frame.binary { BINARY_FLAG } else { 0 };
    dst.reserve(HEADER_LEN + frame.sessions.len() + frame.data.len());
    dst.put_u16(frame.raw_kind);
    dst.put_u16(slen);
    dst.put_u32(frame.data.len() as u32 | flag);
    dst.extend_from_slice(&frame.sessions);
    dst.extend_from_slice(&frame.data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{FrameKind, SessionId};

    fn encode(frame: &Frame) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::default().encode(frame.clone(), &mut buf).unwrap();
        buf
    }

    #[test]
    fn round_trips_every_layout() {
        let id = SessionId::from_u64(42);
        let frames = [
            Frame::new(FrameKind::Info, Bytes::new(), Bytes::new()),
            Frame::new(FrameKind::ChPub, Bytes::from_static(b"room"), Bytes::from_static(b"hi")),
            Frame {
                binary: true,
                ..Frame::new(
                    FrameKind::SendMsg,
                    Bytes::copy_from_slice(id.as_bytes()),
                    Bytes::from_static(&[0, 159, 255]),
                )
            },
            Frame { raw_kind: 999, binary: false, sessions: Bytes::new(), data: Bytes::from_static(b"x") },
        ];
        let mut stream = BytesMut::new();
        for frame in &frames {
            stream.extend_from_slice(&encode(frame));
        }
        let mut codec = FrameCodec::default();
        for frame in &frames {
            assert_eq!(codec.decode(&mut stream).unwrap().as_ref(), Some(frame));
        }
        assert!(stream.is_empty());
    }

    #[test]
    fn header_is_fookings_big_endian_layout() {
        let bytes = encode(&Frame::new(FrameKind::ChPub, Bytes::from_static(b"ch"), Bytes::from_static(b"abc")));
        assert_eq!(&bytes[..], b"\x00\x09\x00\x02\x00\x00\x00\x03chabc");
    }

    #[test]
    fn waits_for_a_whole_frame_byte_by_byte() {
        let bytes = encode(&Frame::new(FrameKind::SendAll, Bytes::new(), Bytes::from_static(b"hello")));
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for (i, byte) in bytes.iter().enumerate() {
            buf.put_u8(*byte);
            let decoded = codec.decode(&mut buf).unwrap();
            assert_eq!(decoded.is_some(), i == bytes.len() - 1);
        }
    }

    #[test]
    fn oversized_data_is_refused_before_buffering() {
        let mut buf = BytesMut::from(&b"\x00\x06\x00\x00\x00\x10\x00\x01"[..]);
        let err = FrameCodec::new(1024).decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 0x100001, max: 1024 }));
    }

    #[test]
    fn before_auth_the_session_area_counts_and_nothing_large_is_buffered() {
        let mut codec = FrameCodec::before_auth();
        let mut buf = BytesMut::from(&b"\x00\x05\x10\x00\x00\x00\x00\x10"[..]);
        assert!(matches!(codec.decode(&mut buf).unwrap_err(), FrameError::TooLarge { len: 0x1010, .. }));
        assert!(buf.capacity() < 64, "nothing reserved for it");
        let auth = encode(&Frame::new(FrameKind::Auth, Bytes::from_static(b"backend"), Bytes::from_static(b"t")));
        let mut buf = BytesMut::from(&auth[..]);
        assert!(codec.decode(&mut buf).unwrap().is_some());
        codec.authenticated(DEFAULT_MAX_DATA);
        let mut buf = BytesMut::from(&b"\x00\x05\x10\x00\x00\x00\x00\x10"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none(), "a large frame waits for its bytes once authenticated");
    }

    #[test]
    fn eof_mid_frame_is_truncation() {
        let mut buf = BytesMut::from(&b"\x00\x06\x00\x00\x00\x00\x00\x05ab"[..]);
        let err = FrameCodec::default().decode_eof(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::Truncated { buffered: 10 }));
    }
}
