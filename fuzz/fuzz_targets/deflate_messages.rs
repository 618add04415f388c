//! Compressed messages come from clients: any bytes must inflate or be
//! refused without a panic, never past the bound; and any message must
//! come back unchanged from compression at every window and level.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_deflate::{compress, compress_at, inflate, InflateError, MAX_WINDOW_BITS, MIN_COMPRESS_WINDOW_BITS};

const MAX: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    match inflate(data, MAX) {
        Ok(inflated) => assert!(inflated.len() <= MAX),
        Err(InflateError::TooBig(max)) => assert_eq!(max, MAX),
        Err(InflateError::Corrupt) => {}
    }
    let Some((&control, message)) = data.split_first() else { return };
    let window = MIN_COMPRESS_WINDOW_BITS + control % (MAX_WINDOW_BITS - MIN_COMPRESS_WINDOW_BITS + 1);
    assert_eq!(inflate(&compress(message, window), message.len()).unwrap(), message);
    assert_eq!(inflate(&compress_at(message, u32::from(control >> 4)), message.len()).unwrap(), message);
});
