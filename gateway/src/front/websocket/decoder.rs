//! Bytes from a client in, whole messages out: fragments joined, control
//! frames taken between them, text checked as it arrives (a client that
//! sends bad UTF-8 is stopped at that byte, not at the end of the message),
//! sizes bounded, compressed messages inflated. No I/O here, and nothing
//! held between messages but a partial header.

use bytes::{Bytes, BytesMut};

use super::deflate::{self, InflateError};
use super::frame::{self, apply_mask, CloseError, Header, OpCode, MAX_HEADER};
use crate::base::transport::Violation;

#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Message {
        data: Bytes,
        binary: bool,
    },
    Ping(Bytes),
    Pong,
    /// The client's close frame, with its code if it gave one.
    Close(Option<u16>),
}

pub struct Decoder {
    max_message: usize,
    /// permessage-deflate was agreed: RSV1 marks a compressed message,
    /// inflated within this budget.
    inflate: Option<Box<InflateBudget>>,
    head: [u8; MAX_HEADER],
    head_len: u8,
    frame: Option<InFrame>,
    /// The payload of the control frame being read.
    #[expect(clippy::box_collection, reason = "rare: an idle connection holds 8 bytes for it, not 24")]
    control: Option<Box<Vec<u8>>>,
    /// The data message being read, across its fragments.
    message: Option<Box<Partial>>,
}

/// A frame whose payload is being read.
#[derive(Clone, Copy)]
struct InFrame {
    opcode: OpCode,
    fin: bool,
    mask: [u8; 4],
    remaining: u64,
    /// Payload bytes of this frame read so far, modulo 4 (for unmasking).
    offset: u8,
}

struct Partial {
    binary: bool,
    compressed: bool,
    data: BytesMut,
    /// Bytes of `data` known to be UTF-8 (text only).
    checked: usize,
}

/// What a connection may inflate, set by `--max-inflate-rate` and
/// `--max-inflate-ratio`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InflateLimits {
    /// Bytes a second (0: no limit), up to one largest message at once.
    pub rate: u32,
    /// A message inflates to this many times its compressed size at most,
    /// past [`RATIO_FREE`] (0: no limit).
    pub ratio: u32,
}

/// What any compressed message may inflate to, whatever its ratio.
pub const RATIO_FREE: usize = 64 << 10;

/// What a connection may still inflate. Each compressed message's
/// inflater stops at its share (see [`InflateBudget::bound`]), so the work
/// is bounded before it is done: a client whose small messages inflate to
/// large ones is stopped at the budget, not after the work.
#[derive(Clone, Copy, Debug)]
pub struct InflateBudget {
    limits: InflateLimits,
    left: u32,
    /// When `left` was last brought up to date, in ms on [`clock_ms`].
    refilled: u32,
}

impl InflateBudget {
    /// A budget that starts with one largest message.
    pub fn new(limits: InflateLimits, max_message: usize, now_ms: u32) -> InflateBudget {
        InflateBudget { limits, left: u32::try_from(max_message).unwrap_or(u32::MAX), refilled: now_ms }
    }

    /// What a message of `compressed` bytes may inflate to now.
    fn bound(&mut self, compressed: usize, max_message: usize, now_ms: u32) -> usize {
        let by_ratio = match self.limits.ratio {
            0 => max_message,
            ratio => compressed.saturating_mul(ratio as usize).max(RATIO_FREE),
        };
        if self.limits.rate == 0 {
            return by_ratio.min(max_message);
        }
        let earned = u64::from(now_ms.wrapping_sub(self.refilled)) * u64::from(self.limits.rate) / 1000;
        let cap = u32::try_from(max_message).unwrap_or(u32::MAX);
        self.left = u32::try_from(u64::from(self.left) + earned).unwrap_or(u32::MAX).min(cap);
        self.refilled = now_ms;
        by_ratio.min(self.left as usize)
    }

    fn spend(&mut self, bytes: usize) {
        self.left = self.left.saturating_sub(u32::try_from(bytes).unwrap_or(u32::MAX));
    }
}

/// Milliseconds on a clock that starts with the process (wraps after 49 days).
pub fn clock_ms() -> u32 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u32
}

fn protocol(why: impl Into<String>) -> Violation {
    Violation::Protocol(why.into())
}

impl Decoder {
    /// `inflate`: permessage-deflate was agreed, with that budget.
    pub fn new(max_message: usize, inflate: Option<InflateBudget>) -> Decoder {
        Decoder {
            max_message,
            inflate: inflate.map(Box::new),
            head: [0; MAX_HEADER],
            head_len: 0,
            frame: None,
            control: None,
            message: None,
        }
    }

    /// Decodes from the front of `input`, leaving what it did not use:
    /// the next message, or `None` once `input` is used up without one.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Decoded>, Violation> {
        loop {
            let mut frame = match self.frame.take() {
                Some(frame) => frame,
                None => match self.read_header(input)? {
                    Some(frame) => frame,
                    None => return Ok(None),
                },
            };
            let take = input.len().min(usize::try_from(frame.remaining).unwrap_or(usize::MAX));
            let (chunk, rest) = input.split_at(take);
            *input = rest;
            self.append(&frame, chunk)?;
            frame.remaining -= take as u64;
            frame.offset = ((usize::from(frame.offset) + take) % 4) as u8;
            if frame.remaining > 0 {
                self.frame = Some(frame);
                return Ok(None);
            }
            if let Some(decoded) = self.finish(frame)? {
                return Ok(Some(decoded));
            }
        }
    }

    /// The next frame's header, gathered across calls if need be.
    fn read_header(&mut self, input: &mut &[u8]) -> Result<Option<InFrame>, Violation> {
        let had = self.head_len as usize;
        let parsed = if had == 0 {
            Header::parse(input)
        } else {
            let add = (MAX_HEADER - had).min(input.len());
            self.head[had..had + add].copy_from_slice(&input[..add]);
            Header::parse(&self.head[..had + add])
        };
        let Some((header, len)) = parsed.map_err(|err| protocol(err.to_string()))? else {
            // Shorter than a whole header, so it fits.
            let add = (MAX_HEADER - had).min(input.len());
            if had == 0 {
                self.head[..add].copy_from_slice(&input[..add]);
            }
            self.head_len = (had + add) as u8;
            *input = &input[add..];
            return Ok(None);
        };
        *input = &input[len - had..];
        self.head_len = 0;
        self.start(header).map(Some)
    }

    fn start(&mut self, header: Header) -> Result<InFrame, Violation> {
        let mask = header.mask.ok_or_else(|| protocol("a client frame must be masked"))?;
        if header.compressed && !(self.inflate.is_some() && matches!(header.opcode, OpCode::Text | OpCode::Binary)) {
            return Err(protocol("RSV1 set on a frame that cannot be compressed"));
        }
        let have = match (header.opcode, &self.message) {
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(protocol("a new message before the last one ended"))
            }
            (OpCode::Continuation, None) => return Err(protocol("a continuation frame with no message begun")),
            (OpCode::Continuation, Some(message)) => message.data.len(),
            _ => 0,
        };
        if !header.opcode.is_control() && header.len > (self.max_message - have) as u64 {
            return Err(Violation::TooBig(format!("message over {} bytes", self.max_message)));
        }
        match header.opcode {
            OpCode::Text | OpCode::Binary => {
                self.message = Some(Box::new(Partial {
                    binary: header.opcode == OpCode::Binary,
                    compressed: header.compressed,
                    data: BytesMut::new(),
                    checked: 0,
                }));
            }
            OpCode::Continuation => {}
            _ => self.control = Some(Box::new(Vec::with_capacity(header.len as usize))),
        }
        Ok(InFrame { opcode: header.opcode, fin: header.fin, mask, remaining: header.len, offset: 0 })
    }

    fn take_control(&mut self) -> Vec<u8> {
        self.control.take().map_or_else(Vec::new, |control| *control)
    }

    /// Adds payload bytes, unmasked, to the control frame or the message.
    fn append(&mut self, frame: &InFrame, chunk: &[u8]) -> Result<(), Violation> {
        if frame.opcode.is_control() {
            let control = self.control.get_or_insert_default();
            let start = control.len();
            control.extend_from_slice(chunk);
            apply_mask(&mut control[start..], frame.mask, frame.offset.into());
            return Ok(());
        }
        let message = self.message.as_deref_mut().expect("a data frame starts its message");
        let start = message.data.len();
        message.data.extend_from_slice(chunk);
        apply_mask(&mut message.data[start..], frame.mask, frame.offset.into());
        if !message.binary && !message.compressed {
            check_utf8(message, false)?;
        }
        Ok(())
    }

    fn finish(&mut self, frame: InFrame) -> Result<Option<Decoded>, Violation> {
        let decoded = match frame.opcode {
            OpCode::Close => {
                let payload = self.take_control();
                let code = frame::parse_close(&payload).map_err(|err| match err {
                    CloseError::ReasonNotUtf8 => Violation::InvalidPayload(err.to_string()),
                    _ => protocol(err.to_string()),
                })?;
                Decoded::Close(code.map(|(code, _)| code))
            }
            OpCode::Ping => Decoded::Ping(self.take_control().into()),
            OpCode::Pong => {
                self.control = None;
                Decoded::Pong
            }
            _ if !frame.fin => return Ok(None),
            _ => {
                let mut message = self.message.take().expect("a data frame has its message");
                if message.compressed {
                    let budget = self.inflate.as_mut().expect("compressed only when agreed");
                    let allowed = budget.bound(message.data.len(), self.max_message, clock_ms());
                    let inflated = deflate::inflate(&message.data, allowed).map_err(|err| match err {
                        InflateError::TooBig(_) if allowed < self.max_message => Violation::InflateBudget(format!(
                            "a message of {} bytes that inflates past the {allowed} it may now",
                            message.data.len()
                        )),
                        InflateError::TooBig(_) => Violation::TooBig(err.to_string()),
                        InflateError::Corrupt => Violation::InvalidPayload(err.to_string()),
                    })?;
                    budget.spend(inflated.len());
                    message.data = BytesMut::from(&inflated[..]);
                }
                if !message.binary {
                    check_utf8(&mut message, true)?;
                }
                Decoded::Message { data: message.data.freeze(), binary: message.binary }
            }
        };
        Ok(Some(decoded))
    }
}

/// Checks what arrived since the last check; a character cut at the end
/// waits for its next bytes, unless the message is `complete`.
fn check_utf8(message: &mut Partial, complete: bool) -> Result<(), Violation> {
    match std::str::from_utf8(&message.data[message.checked..]) {
        Ok(_) => message.checked = message.data.len(),
        Err(err) if err.error_len().is_none() && !complete => message.checked += err.valid_up_to(),
        Err(_) => return Err(Violation::InvalidPayload("text message is not UTF-8".into())),
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client frame as a client would send it.
    pub fn client_frame(opcode: OpCode, fin: bool, compressed: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [0xa1, 0x02, 0x7f, 0xee];
        let mut out = Vec::new();
        Header { fin, compressed, opcode, mask: Some(mask), len: payload.len() as u64 }.encode(&mut out);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], mask, 0);
        out
    }

    /// Feeds `bytes` in pieces of `piece`, collecting what comes out.
    fn decode_all(decoder: &mut Decoder, bytes: &[u8], piece: usize) -> Result<Vec<Decoded>, Violation> {
        let mut out = Vec::new();
        for mut input in bytes.chunks(piece.max(1)) {
            while let Some(decoded) = decoder.decode(&mut input)? {
                out.push(decoded);
            }
            assert!(input.is_empty());
        }
        Ok(out)
    }

    fn text(s: &str) -> Decoded {
        Decoded::Message { data: Bytes::copy_from_slice(s.as_bytes()), binary: false }
    }

    #[test]
    fn fragments_join_around_control_frames_however_the_bytes_are_cut() {
        let mut wire = client_frame(OpCode::Text, false, false, "héllo ".as_bytes());
        wire.extend(client_frame(OpCode::Ping, true, false, b"p"));
        wire.extend(client_frame(OpCode::Continuation, false, false, b""));
        wire.extend(client_frame(OpCode::Continuation, true, false, "wörld".as_bytes()));
        wire.extend(client_frame(OpCode::Binary, true, false, &[0, 255]));
        wire.extend(client_frame(OpCode::Close, true, false, &[0x03, 0xe8]));
        let expected = vec![
            Decoded::Ping(Bytes::from_static(b"p")),
            text("héllo wörld"),
            Decoded::Message { data: Bytes::from_static(&[0, 255]), binary: true },
            Decoded::Close(Some(1000)),
        ];
        for piece in [1, 2, 3, 7, 1000] {
            assert_eq!(decode_all(&mut Decoder::new(1024, None), &wire, piece).unwrap(), expected, "piece {piece}");
        }
    }

    #[test]
    fn bad_utf8_is_caught_at_the_byte_that_breaks_it() {
        let mut decoder = Decoder::new(1024, None);
        let mut frame = client_frame(OpCode::Text, true, false, b"fine so far \xce\xba \xf4\x90\x80\x80 rest");
        let bad_at = frame.len() - 8;
        assert!(decode_all(&mut decoder, &frame[..bad_at - 2], 1000).unwrap().is_empty());
        assert!(matches!(decode_all(&mut decoder, &frame[bad_at - 2..], 1), Err(Violation::InvalidPayload(_))));
        // A character cut between fragments is fine; one cut at the end is not.
        frame = client_frame(OpCode::Text, false, false, b"\xce");
        frame.extend(client_frame(OpCode::Continuation, true, false, b"\xba"));
        assert_eq!(decode_all(&mut Decoder::new(1024, None), &frame, 1).unwrap(), vec![text("κ")]);
        let cut = client_frame(OpCode::Text, true, false, b"\xce");
        assert!(matches!(decode_all(&mut Decoder::new(1024, None), &cut, 9), Err(Violation::InvalidPayload(_))));
    }

    #[test]
    fn protocol_breaches_and_oversize_are_refused() {
        let refused = |wire: Vec<u8>, inflate: bool| {
            decode_all(&mut Decoder::new(10, budget(inflate, 10)), &wire, 1000).unwrap_err()
        };
        let mut unmasked = Vec::new();
        Header::server(OpCode::Text, false, 1).encode(&mut unmasked);
        unmasked.push(b'a');
        assert!(matches!(refused(unmasked, false), Violation::Protocol(_)));
        assert!(matches!(
            refused(client_frame(OpCode::Continuation, true, false, b"a"), false),
            Violation::Protocol(_)
        ));
        let mut two_starts = client_frame(OpCode::Text, false, false, b"a");
        two_starts.extend(client_frame(OpCode::Text, true, false, b"b"));
        assert!(matches!(refused(two_starts, false), Violation::Protocol(_)));
        assert!(matches!(refused(client_frame(OpCode::Text, true, true, b"a"), false), Violation::Protocol(_)));
        assert!(matches!(refused(client_frame(OpCode::Ping, true, true, b""), true), Violation::Protocol(_)));
        assert!(matches!(refused(client_frame(OpCode::Close, true, false, &[3]), false), Violation::Protocol(_)));
        assert!(matches!(refused(client_frame(OpCode::Binary, true, false, &[0; 11]), false), Violation::TooBig(_)));
        let mut across_fragments = client_frame(OpCode::Binary, false, false, &[0; 6]);
        across_fragments.extend(client_frame(OpCode::Continuation, true, false, &[0; 5]));
        assert!(matches!(refused(across_fragments, false), Violation::TooBig(_)));
    }

    #[test]
    fn compressed_messages_inflate_within_the_bound() {
        let data = "compress me ".repeat(50);
        let compressed = deflate::compress(data.as_bytes(), 15);
        let (first, second) = compressed.split_at(compressed.len() / 2);
        let mut wire = client_frame(OpCode::Text, false, true, first);
        wire.extend(client_frame(OpCode::Continuation, true, false, second));
        let decoded = decode_all(&mut Decoder::new(data.len(), budget(true, data.len())), &wire, 5).unwrap();
        assert_eq!(decoded, vec![text(&data)]);
        let bomb = client_frame(OpCode::Binary, true, true, &deflate::compress(&[0; 100_000], 15));
        let err = decode_all(&mut Decoder::new(1000, budget(true, 1000)), &bomb, 1000).unwrap_err();
        assert!(matches!(err, Violation::TooBig(_)), "{err:?}");
    }

    const NO_LIMITS: InflateLimits = InflateLimits { rate: 0, ratio: 0 };

    fn budget(inflate: bool, max_message: usize) -> Option<InflateBudget> {
        inflate.then(|| InflateBudget::new(NO_LIMITS, max_message, clock_ms()))
    }

    #[test]
    fn a_connection_inflates_its_rate_and_a_message_past_what_is_left_is_stopped_there() {
        let mut budget = InflateBudget::new(InflateLimits { rate: 1000, ratio: 0 }, 600, 0);
        assert_eq!(budget.bound(1, 600, 0), 600, "it starts with one largest message");
        budget.spend(500);
        assert_eq!(budget.bound(1, 600, 100), 200, "100 ms earn 100 bytes");
        budget.spend(200);
        assert_eq!(budget.bound(1, 600, 100), 0);
        assert_eq!(budget.bound(1, 600, 10_000), 600, "never more than one largest message");
        assert_eq!(InflateBudget::new(NO_LIMITS, 600, 0).bound(1, 600, 0), 600, "0 is no limit");

        let limits = InflateLimits { rate: 1, ratio: 0 };
        let mut decoder = Decoder::new(2000, Some(InflateBudget::new(limits, 2000, clock_ms())));
        let message = client_frame(OpCode::Binary, true, true, &deflate::compress(&[7; 1500], 15));
        assert_eq!(decode_all(&mut decoder, &message, 1000).unwrap().len(), 1, "within the budget");
        let err = decode_all(&mut decoder, &message, 1000).unwrap_err();
        assert!(matches!(err, Violation::InflateBudget(_)), "500 bytes left, not 1500: {err:?}");
    }

    #[test]
    fn a_message_inflates_to_its_ratio_past_the_free_part() {
        let mut budget = InflateBudget::new(InflateLimits { rate: 0, ratio: 10 }, 1 << 20, 0);
        assert_eq!(budget.bound(100, 1 << 20, 0), RATIO_FREE, "small messages inflate to the free part");
        assert_eq!(budget.bound(10_000, 1 << 20, 0), 100_000);
        assert_eq!(budget.bound(1 << 20, 1 << 20, 0), 1 << 20, "never past the largest message");

        let limits = InflateLimits { rate: 0, ratio: 10 };
        let mut decoder = Decoder::new(1 << 20, Some(InflateBudget::new(limits, 1 << 20, clock_ms())));
        let bomb = deflate::compress(&vec![b'a'; 100_000], 15);
        let err = decode_all(&mut decoder, &client_frame(OpCode::Text, true, true, &bomb), 1 << 20).unwrap_err();
        assert!(matches!(err, Violation::InflateBudget(_)), "{} bytes to 100,000: {err:?}", bomb.len());
        let json = br#"{"type":"msg","text":"hello","channel":1}"#.repeat(2000);
        let mut decoder = Decoder::new(1 << 20, Some(InflateBudget::new(limits, 1 << 20, clock_ms())));
        let compressed = client_frame(OpCode::Text, true, true, &deflate::compress(&json, 15));
        let err = decode_all(&mut decoder, &compressed, 1 << 20).unwrap_err();
        assert!(matches!(err, Violation::InflateBudget(_)), "repeated JSON passes 10 to 1 too");
    }
}
