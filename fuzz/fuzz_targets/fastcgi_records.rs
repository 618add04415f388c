//! The gateway reads FastCGI records from backends it does not control:
//! any bytes, cut anywhere, must decode without a panic, and whatever
//! decodes must survive a round trip and the CGI response parser.
#![no_main]

use bytes::{Bytes, BytesMut};
use gateway::upstream::fastcgi::{decode_pairs, CgiResponse, RecordCodec, RecordType};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| *b as usize) % (data.len() + 1);
    let mut buf = BytesMut::from(&data[..cut]);
    let mut records = Vec::new();
    let mut feed = |buf: &mut BytesMut| -> bool {
        loop {
            match RecordCodec.decode(buf) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    };
    if feed(&mut buf) {
        buf.extend_from_slice(&data[cut..]);
        let _ = feed(&mut buf) && RecordCodec.decode_eof(&mut buf).is_ok();
    }
    let mut stdout = BytesMut::new();
    for record in records {
        let _ = decode_pairs(&record.content);
        if record.is(RecordType::Stdout) {
            stdout.extend_from_slice(&record.content);
        }
        let mut encoded = BytesMut::new();
        RecordCodec.encode(record.clone(), &mut encoded).unwrap();
        let again = RecordCodec.decode(&mut encoded).unwrap().expect("a whole record");
        assert_eq!(again, record);
    }
    let _ = CgiResponse::parse(Bytes::from(stdout));
});
