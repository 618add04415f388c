//! permessage-deflate (RFC 7692), always without context takeover in
//! either direction: each message is compressed and inflated on its own,
//! so an idle connection holds no compressor. The (de)compressors are kept
//! per thread and reset per message. Server and client frames compress
//! alike; the gateway and the load tool share this.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Every deflated message ends in an empty stored block, which the sender
/// strips and the receiver puts back (§7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// The largest window, the one a broadcast is compressed with once.
pub const MAX_WINDOW_BITS: u8 = 15;
/// zlib's raw deflate has no 256-byte window: a peer that asks for a
/// window of 8 bits gets its messages uncompressed.
pub const MIN_COMPRESS_WINDOW_BITS: u8 = 9;
/// Level 1: a broadcast is compressed once, but a reply per session.
const LEVEL: u32 = 1;

const WINDOWS: usize = (MAX_WINDOW_BITS - MIN_COMPRESS_WINDOW_BITS + 1) as usize;

thread_local! {
    /// One compressor per window size, made when first needed.
    static COMPRESSORS: RefCell<[Option<Compress>; WINDOWS]> = RefCell::new(Default::default());
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// One message, compressed on its own with a window of `window_bits`
/// (9 to 15): the payload of a frame with RSV1. Fast (level 1), with a
/// compressor per thread and window kept for the next message.
pub fn compress(data: &[u8], window_bits: u8) -> Bytes {
    let slot = usize::from(window_bits.clamp(MIN_COMPRESS_WINDOW_BITS, MAX_WINDOW_BITS) - MIN_COMPRESS_WINDOW_BITS);
    COMPRESSORS.with_borrow_mut(|compressors| {
        let compressor = compressors[slot].get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(LEVEL), false, MIN_COMPRESS_WINDOW_BITS + slot as u8)
        });
        compressor.reset();
        deflate(compressor, data)
    })
}

/// One message compressed at `level` (0 to 9) with the largest window and
/// a compressor of its own: for a client, which sends few messages, or a
/// test that wants the smallest frame.
pub fn compress_at(data: &[u8], level: u32) -> Bytes {
    deflate(&mut Compress::new(Compression::new(level.min(9)), false), data)
}

fn deflate(compressor: &mut Compress, data: &[u8]) -> Bytes {
    let start = compressor.total_in();
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let read = (compressor.total_in() - start) as usize;
        compressor.compress_vec(&data[read..], &mut out, FlushCompress::Sync).expect("deflate takes any input");
        // zlib's word: the flush is done once a call leaves room unused.
        let all_read = (compressor.total_in() - start) as usize == data.len();
        if all_read && out.len() < out.capacity() && out.ends_with(&TAIL) {
            break;
        }
        out.reserve(out.capacity());
    }
    out.truncate(out.len() - TAIL.len());
    Bytes::from(out)
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    #[error("inflated message over {0} bytes")]
    TooBig(usize),
    #[error("corrupt deflate data")]
    Corrupt,
}

/// Inflates one message, stopping as soon as it passes `max` bytes: a
/// small frame that inflates to gigabytes costs no more than `max`.
pub fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
    INFLATER.with_borrow_mut(|inflater| {
        inflater.reset(false);
        let room = max.saturating_add(1);
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).max(64).min(room));
        for input in [data, &TAIL[..]] {
            let start = inflater.total_in();
            loop {
                let read = (inflater.total_in() - start) as usize;
                if out.len() == out.capacity() {
                    // Grows by doubling, never past one byte over the bound.
                    out.reserve_exact(out.len().max(64).min(room - out.len()));
                }
                let before = (inflater.total_in(), out.len());
                let status = inflater
                    .decompress_vec(&input[read..], &mut out, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Corrupt)?;
                if out.len() > max {
                    return Err(InflateError::TooBig(max));
                }
                let all_read = (inflater.total_in() - start) as usize == input.len();
                if status == Status::StreamEnd || (all_read && out.len() < out.capacity()) {
                    break;
                }
                if before == (inflater.total_in(), out.len()) && out.len() < out.capacity() {
                    return Err(InflateError::Corrupt);
                }
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that compress as real files do, some well and some hardly.
    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            match state >> 62 {
                0 => out.extend_from_slice(b"{\"type\":\"msg\",\"text\":"),
                1 => out.extend(std::iter::repeat_n((state >> 8) as u8, (state >> 16) as usize % 40)),
                _ => out.extend_from_slice(&state.to_le_bytes()),
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn messages_round_trip_with_every_window() {
        let json = br#"{"type":"msg","text":"hello hello hello hello","channel":1}"#.repeat(20);
        for window in 9..=15 {
            for data in [b"".to_vec(), b"a".to_vec(), json.clone(), sample(65_536, window as u64), sample(300_000, 7)] {
                let compressed = compress(&data, window);
                assert_eq!(inflate(&compressed, data.len()).unwrap(), data, "window {window}, {} bytes", data.len());
            }
        }
        assert!(compress(&json, 15).len() < json.len() / 10);
    }

    #[test]
    fn a_client_compresses_at_its_level_and_the_server_reads_it() {
        let json = br#"{"type":"msg","text":"hello hello hello hello","channel":1}"#.repeat(20);
        for level in [0, 1, 6, 9] {
            assert_eq!(inflate(&compress_at(&json, level), json.len()).unwrap(), json, "level {level}");
        }
        let zeros = vec![0u8; 1_000_000];
        assert!(compress_at(&zeros, 9).len() * 4 < compress(&zeros, 15).len(), "level 9 packs runs tighter than 1");
        assert!(compress_at(&json, 0).len() > json.len(), "level 0 stores");
    }

    #[test]
    fn a_bomb_stops_at_the_bound_and_garbage_is_refused() {
        let bomb = compress(&vec![0u8; 10_000_000], 15);
        assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
        assert_eq!(inflate(&bomb, 1_000_000), Err(InflateError::TooBig(1_000_000)));
        assert_eq!(inflate(&compress(b"exactly", 15), 7).unwrap(), b"exactly");
        assert_eq!(inflate(&compress(b"exactly!", 15), 7), Err(InflateError::TooBig(7)));
        assert_eq!(inflate(&[0xff, 0xff, 0xff, 0xff], 100), Err(InflateError::Corrupt));
    }
}
