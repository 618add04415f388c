//! WebSocket clients send whatever they like: any bytes, cut anywhere, with
//! or without permessage-deflate, must decode without a panic, within the
//! size limit (inflated too), and every message decoded must decode again,
//! unchanged, when a client resends it.
#![no_main]

use gateway::front::websocket::decoder::{clock_ms, Decoded, Decoder, InflateBudget, InflateLimits};
use gateway::front::websocket::frame::{apply_mask, Header, OpCode};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fn decode(decoder: &mut Decoder, pieces: &[&[u8]]) -> Vec<Decoded> {
    let mut out = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(decoded)) => out.push(decoded),
                Ok(None) => {
                    assert!(input.is_empty());
                    break;
                }
                Err(_) => return out,
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else { return };
    let limits = InflateLimits { rate: u32::from(control >> 4) * 256, ratio: u32::from(control >> 1 & 7) };
    let inflate = (control & 1 == 1).then(|| InflateBudget::new(limits, MAX, clock_ms()));
    let cut = control as usize % (data.len() + 1);
    let decoded = decode(&mut Decoder::new(MAX, inflate), &[&data[..cut], &data[cut..]]);
    for message in decoded {
        let Decoded::Message { data, binary } = message else { continue };
        assert!(data.len() <= MAX);
        if !binary {
            assert!(std::str::from_utf8(&data).is_ok());
        }
        let opcode = if binary { OpCode::Binary } else { OpCode::Text };
        let mask = [control, 1, 2, 3];
        let mut wire = Vec::new();
        Header { fin: true, compressed: false, opcode, mask: Some(mask), len: data.len() as u64 }.encode(&mut wire);
        let start = wire.len();
        wire.extend_from_slice(&data);
        apply_mask(&mut wire[start..], mask, 0);
        let again = decode(&mut Decoder::new(MAX, inflate), &[&wire]);
        assert_eq!(again, vec![Decoded::Message { data, binary }]);
    }
});
