//! fooking's PHP `RouterClient`, byte for byte: one TCP connection per
//! call, one hand-built frame, a reply read only for INFO. Built without
//! the router crate's codec so the two can disagree.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const KICK: u16 = 4;
pub const SEND_MSG: u16 = 5;
pub const SEND_ALL: u16 = 6;
pub const CH_ADD: u16 = 7;
pub const CH_DEL: u16 = 8;
pub const CH_PUB: u16 = 9;
pub const INFO: u16 = 12;

/// `u16 type, u16 slen, i32 len`, session area, data. `binary` sets the
/// top bit of `len`.
pub fn frame(kind: u16, sessions: &[u8], data: &[u8], binary: bool) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(sessions.len() as u16).to_be_bytes());
    let flag = if binary { 0x8000_0000u32 } else { 0 };
    out.extend_from_slice(&(data.len() as u32 | flag).to_be_bytes());
    out.extend_from_slice(sessions);
    out.extend_from_slice(data);
    out
}

/// Sends one frame on a fresh connection, as the PHP client does.
/// Returns the reply's data for INFO.
pub fn call(port: u16, frame: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(frame).unwrap();
    if u16::from_be_bytes([frame[0], frame[1]]) != INFO {
        return None;
    }
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(&header[..4], &[0, 12, 0, 0], "INFO reply is type 12 with an empty session area");
    let len = u32::from_be_bytes(header[4..].try_into().unwrap()) & 0x7fff_ffff;
    let mut data = vec![0u8; len as usize];
    stream.read_exact(&mut data).unwrap();
    Some(data)
}
