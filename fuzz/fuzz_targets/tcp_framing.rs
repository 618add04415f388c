//! Raw TCP clients send whatever they like: any bytes, cut anywhere, must
//! decode without a panic, within the size limit, and round-trip.
#![no_main]

use bytes::BytesMut;
use gateway::front::framing::LengthPrefixed;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| *b as usize) % (data.len() + 1);
    let mut codec = LengthPrefixed::new(MAX);
    let mut buf = BytesMut::from(&data[..cut]);
    let mut messages = Vec::new();
    let mut ok = true;
    for more in [&data[cut..], &[][..]] {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            break;
        }
        buf.extend_from_slice(more);
    }
    for message in messages {
        assert!(message.len() <= MAX);
        let mut encoded = BytesMut::new();
        codec.encode(message.clone(), &mut encoded).unwrap();
        assert_eq!(codec.decode(&mut encoded).unwrap(), Some(message));
    }
});
