//! One WebSocket frame on the wire (RFC 6455 §5.2): the header, the
//! masking of client payloads, and a close frame's payload. No I/O here.

use bytes::{BufMut, Bytes, BytesMut};

/// The longest header: 2 bytes, an 8-byte length, a 4-byte mask.
pub const MAX_HEADER: usize = 14;
/// A control frame carries at most this much (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

const FIN: u8 = 0x80;
/// RSV1: the message is compressed (permessage-deflate, RFC 7692).
const RSV1: u8 = 0x40;
const RSV2_RSV3: u8 = 0x30;
const MASKED: u8 = 0x80;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    /// RSV1, which permessage-deflate takes to mean "compressed".
    pub compressed: bool,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

/// A header no endpoint may send, whatever was negotiated.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("reserved bits RSV2/RSV3 set")]
    ReservedBits,
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    #[error("fragmented control frame")]
    FragmentedControl,
    #[error("control frame of {0} bytes (at most 125)")]
    ControlTooLong(u64),
    #[error("frame length with its top bit set")]
    LengthOverflow,
}

impl Header {
    /// Parses the header at the start of `buf`: with its length in bytes,
    /// or `None` while `buf` holds only part of it.
    pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, HeaderError> {
        let [first, second, ..] = *buf else { return Ok(None) };
        if first & RSV2_RSV3 != 0 {
            return Err(HeaderError::ReservedBits);
        }
        let opcode = OpCode::from_bits(first & 0x0F).ok_or(HeaderError::UnknownOpcode(first & 0x0F))?;
        let fin = first & FIN != 0;
        let short = second & 0x7F;
        let (len, mut at) = match short {
            126 => match buf.get(2..4) {
                Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
                None => return Ok(None),
            },
            n => (n as u64, 2),
        };
        if len >> 63 != 0 {
            return Err(HeaderError::LengthOverflow);
        }
        if opcode.is_control() {
            if !fin {
                return Err(HeaderError::FragmentedControl);
            }
            if len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(HeaderError::ControlTooLong(len));
            }
        }
        let mask = if second & MASKED != 0 {
            let Some(key) = buf.get(at..at + 4) else { return Ok(None) };
            at += 4;
            Some(key.try_into().expect("4 bytes"))
        } else {
            None
        };
        Ok(Some((Header { fin, compressed: first & RSV1 != 0, opcode, mask, len }, at)))
    }

    /// Writes the header (the payload follows it), in as few bytes as the
    /// length allows.
    pub fn encode(&self, out: &mut impl BufMut) {
        let mut first = self.opcode.bits();
        if self.fin {
            first |= FIN;
        }
        if self.compressed {
            first |= RSV1;
        }
        out.put_u8(first);
        let masked = if self.mask.is_some() { MASKED } else { 0 };
        match self.len {
            len @ 0..=125 => out.put_u8(masked | len as u8),
            len @ 126..=0xFFFF => {
                out.put_u8(masked | 126);
                out.put_u16(len as u16);
            }
            len => {
                out.put_u8(masked | 127);
                out.put_u64(len);
            }
        }
        if let Some(key) = self.mask {
            out.put_slice(&key);
        }
    }

    /// A server frame: final and unmasked.
    pub fn server(opcode: OpCode, compressed: bool, len: usize) -> Header {
        Header { fin: true, compressed, opcode, mask: None, len: len as u64 }
    }
}

/// A whole server frame: its header, then `payload`.
pub fn server_frame(opcode: OpCode, compressed: bool, payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(MAX_HEADER + payload.len());
    Header::server(opcode, compressed, payload.len()).encode(&mut frame);
    frame.extend_from_slice(payload);
    frame.freeze()
}

/// Masks or unmasks `data` in place; `offset` is how many bytes of the same
/// payload came before it, so a payload can be unmasked as it arrives.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let word_key = u32::from_ne_bytes(key);
    let mut words = data.chunks_exact_mut(4);
    for word in &mut words {
        let value = u32::from_ne_bytes((&*word).try_into().expect("4 bytes")) ^ word_key;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, k) in words.into_remainder().iter_mut().zip(key) {
        *byte ^= k;
    }
}

/// What a close frame's payload may be wrong about.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    #[error("close frame with a 1-byte payload")]
    Truncated,
    #[error("close code {0} may not be sent")]
    BadCode(u16),
    #[error("close reason is not UTF-8")]
    ReasonNotUtf8,
}

/// A close frame's payload: its code and reason, or neither (§5.5.1).
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, &str)>, CloseError> {
    match payload {
        [] => Ok(None),
        [_] => Err(CloseError::Truncated),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !close_code_may_be_sent(code) {
                return Err(CloseError::BadCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| CloseError::ReasonNotUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Codes an endpoint may put in a close frame: the registered ones that
/// are not reserved for "no frame" meanings, and 3000-4999 (§7.4).
pub fn close_code_may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A close frame's payload: the code, then as much of `reason` as fits a
/// control frame, cut on a character boundary.
pub fn close_payload(code: u16, reason: &str, out: &mut impl BufMut) {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.put_u16(code);
    out.put_slice(&reason.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(header: Header) -> Vec<u8> {
        let mut out = Vec::new();
        header.encode(&mut out);
        out
    }

    #[test]
    fn headers_round_trip_at_every_length_encoding() {
        for len in [0, 1, 125, 126, 0xFFFF, 0x1_0000, u32::MAX as u64 + 7] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let header = Header { fin: len % 2 == 0, compressed: true, opcode: OpCode::Binary, mask, len };
                let bytes = encoded(header);
                let expected =
                    2 + if len > 0xFFFF {
                        8
                    } else if len > 125 {
                        2
                    } else {
                        0
                    } + 4 * mask.is_some() as usize;
                assert_eq!(bytes.len(), expected, "len {len}");
                assert_eq!(Header::parse(&bytes), Ok(Some((header, bytes.len()))));
                for cut in 0..bytes.len() {
                    assert_eq!(Header::parse(&bytes[..cut]), Ok(None), "len {len}, cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn headers_no_endpoint_may_send_are_refused() {
        assert_eq!(Header::parse(&[0x81 | 0x20, 0x80]), Err(HeaderError::ReservedBits));
        assert_eq!(Header::parse(&[0x83, 0x80]), Err(HeaderError::UnknownOpcode(3)));
        assert_eq!(Header::parse(&[0x09, 0x80]), Err(HeaderError::FragmentedControl));
        assert_eq!(Header::parse(&[0x89, 0x80 | 126, 0, 126]), Err(HeaderError::ControlTooLong(126)));
        let huge = [0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Header::parse(&huge), Err(HeaderError::LengthOverflow));
    }

    #[test]
    fn masking_twice_restores_and_works_from_any_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let plain: Vec<u8> = (0..=255).collect();
        let mut whole = plain.clone();
        apply_mask(&mut whole, key, 0);
        let by_byte: Vec<u8> = plain.iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect();
        assert_eq!(whole, by_byte);
        // Unmasked in pieces of every size, as a payload arrives.
        for piece in 1..9 {
            let mut masked = whole.clone();
            let mut at = 0;
            for chunk in masked.chunks_mut(piece) {
                apply_mask(chunk, key, at);
                at += chunk.len();
            }
            assert_eq!(masked, plain, "pieces of {piece}");
        }
    }

    #[test]
    fn close_payloads_are_checked() {
        assert_eq!(parse_close(&[]), Ok(None));
        assert_eq!(parse_close(&[3]), Err(CloseError::Truncated));
        assert_eq!(parse_close(&[0x03, 0xe8, b'o', b'k']), Ok(Some((1000, "ok"))));
        for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(parse_close(&bad.to_be_bytes()), Err(CloseError::BadCode(bad)));
        }
        assert_eq!(parse_close(&[0x03, 0xe8, 0xff]), Err(CloseError::ReasonNotUtf8));
        let mut out = Vec::new();
        close_payload(4000, &"é".repeat(100), &mut out);
        assert_eq!(out.len(), 2 + 122, "cut to 125 bytes on a character boundary");
        assert_eq!(parse_close(&out).unwrap().unwrap().0, 4000);
    }
}
