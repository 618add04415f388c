//! fooking's raw TCP client framing: a 4-byte big-endian length (its top
//! bit ignored, as fooking does), then that many bytes of message.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

const HEADER_LEN: usize = 4;
const LENGTH_MASK: u32 = 0x7fff_ffff;

#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed in the middle of a message")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct LengthPrefixed {
    max_message: usize,
}

impl LengthPrefixed {
    pub fn new(max_message: usize) -> LengthPrefixed {
        LengthPrefixed { max_message }
    }
}

impl Decoder for LengthPrefixed {
    type Item = Bytes;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = (u32::from_be_bytes([src[0], src[1], src[2], src[3]]) & LENGTH_MASK) as usize;
        if len > self.max_message {
            return Err(FramingError::TooLarge { len, max: self.max_message });
        }
        if src.len() < HEADER_LEN + len {
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self.decode(src)? {
            None if !src.is_empty() => Err(FramingError::Truncated),
            other => Ok(other),
        }
    }
}

impl Encoder<Bytes> for LengthPrefixed {
    type Error = FramingError;

    fn encode(&mut self, message: Bytes, dst: &mut BytesMut) -> Result<(), FramingError> {
        if message.len() > LENGTH_MASK as usize {
            return Err(FramingError::TooLarge { len: message.len(), max: LENGTH_MASK as usize });
        }
        dst.reserve(HEADER_LEN + message.len());
        dst.put_u32(message.len() as u32);
        dst.extend_from_slice(&message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_waits_for_whole_messages() {
        let mut codec = LengthPrefixed::new(1024);
        let mut buf = BytesMut::new();
        for message in [&b"hello"[..], b"", &[0u8, 255, 7]] {
            codec.encode(Bytes::copy_from_slice(message), &mut buf).unwrap();
        }
        let mut partial = BytesMut::from(&buf[..6]);
        assert_eq!(codec.decode(&mut partial).unwrap(), None);
        assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some(&[0u8, 255, 7][..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn the_top_bit_of_the_length_is_ignored() {
        let mut buf = BytesMut::from(&b"\x80\x00\x00\x02hi"[..]);
        assert_eq!(LengthPrefixed::new(16).decode(&mut buf).unwrap().as_deref(), Some(&b"hi"[..]));
    }

    #[test]
    fn oversized_and_truncated_messages_are_errors() {
        let mut big = BytesMut::from(&b"\x00\x01\x00\x00"[..]);
        assert!(matches!(
            LengthPrefixed::new(16).decode(&mut big),
            Err(FramingError::TooLarge { len: 65536, max: 16 })
        ));
        let mut cut = BytesMut::from(&b"\x00\x00\x00\x05ab"[..]);
        assert!(matches!(LengthPrefixed::new(16).decode_eof(&mut cut), Err(FramingError::Truncated)));
    }
}
