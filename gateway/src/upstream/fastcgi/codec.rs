//! FastCGI records (FastCGI 1.0 spec, section 3). The gateway only ever
//! writes requests and reads responses, but both directions are here so
//! the round trip can be tested and fuzzed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

const VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
/// A record's content length is a u16.
pub const MAX_CONTENT: usize = u16::MAX as usize;
const ROLE_RESPONDER: u16 = 1;
const FLAG_KEEP_CONN: u8 = 1;

protocol::wire_enum! {
    /// FastCGI's record types.
    pub enum RecordType: u8 {
        BeginRequest = 1,
        AbortRequest = 2,
        EndRequest = 3,
        Params = 4,
        Stdin = 5,
        Stdout = 6,
        Stderr = 7,
        Data = 8,
        GetValues = 9,
        GetValuesResult = 10,
        UnknownType = 11,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    pub request_id: u16,
    pub content: Bytes,
}

impl Record {
    pub fn is(&self, kind: RecordType) -> bool {
        self.kind == kind as u8
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("parameter {name:?} does not fit in one FastCGI record ({len} bytes encoded)")]
pub struct ParamTooLarge {
    pub name: String,
    pub len: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("unsupported FastCGI version {0}")]
    Version(u8),
    #[error("connection closed in the middle of a record")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[derive(Default, Debug, Clone, Copy)]
pub struct RecordCodec;

impl Decoder for RecordCodec {
    type Item = Record;
    type Error = RecordError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Record>, RecordError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        if src[0] != VERSION {
            return Err(RecordError::Version(src[0]));
        }
        let kind = src[1];
        let request_id = u16::from_be_bytes([src[2], src[3]]);
        let content_len = u16::from_be_bytes([src[4], src[5]]) as usize;
        let padding = src[6] as usize;
        let total = HEADER_LEN + content_len + padding;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let content = src.split_to(content_len).freeze();
        src.advance(padding);
        Ok(Some(Record { kind, request_id, content }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Record>, RecordError> {
        match self.decode(src)? {
            None if !src.is_empty() => Err(RecordError::Truncated),
            other => Ok(other),
        }
    }
}

impl Encoder<Record> for RecordCodec {
    type Error = RecordError;

    fn encode(&mut self, record: Record, dst: &mut BytesMut) -> Result<(), RecordError> {
        for chunk in chunks(&record.content) {
            put_record(dst, record.kind, record.request_id, chunk);
        }
        Ok(())
    }
}

/// Splits content into record-sized pieces; empty content is one empty record.
fn chunks(content: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty: &[u8] = &[];
    let pieces = content.chunks(MAX_CONTENT);
    let end_marker = content.is_empty().then_some(empty);
    pieces.chain(end_marker)
}

fn put_record(dst: &mut BytesMut, kind: u8, request_id: u16, content: &[u8]) {
    let padding = (8 - content.len() % 8) % 8;
    dst.reserve(HEADER_LEN + content.len() + padding);
    put_header(dst, kind, request_id, content.len(), padding);
    dst.extend_from_slice(content);
    dst.put_bytes(0, padding);
}

fn put_header(dst: &mut BytesMut, kind: u8, request_id: u16, content_len: usize, padding: usize) {
    dst.put_u8(VERSION);
    dst.put_u8(kind);
    dst.put_u16(request_id);
    dst.put_u16(content_len as u16);
    dst.put_u8(padding as u8);
    dst.put_u8(0);
}

fn put_length(dst: &mut BytesMut, len: usize) {
    if len < 0x80 {
        dst.put_u8(len as u8);
    } else {
        dst.put_u32(len as u32 | 0x8000_0000);
    }
}

fn pair_len(name: &[u8], value: &[u8]) -> usize {
    let len_of = |n: usize| if n < 0x80 { 1 } else { 4 };
    len_of(name.len()) + len_of(value.len()) + name.len() + value.len()
}

/// Name-value pairs already in FastCGI's encoding, one allocation for all
/// of them. Pairs are walked by their lengths, so no request splits a pair
/// across two records (tokio-fastcgi and php-fpm both drop the connection
/// on that).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamBlock {
    encoded: Vec<u8>,
}

/// One FastCGI name or value length (1 byte, or 4 with the top bit set),
/// taken from the front of `src`; `None` if `src` is too short.
fn read_length(src: &mut &[u8]) -> Option<usize> {
    let first = *src.first()?;
    if first < 0x80 {
        src.advance(1);
        return Some(first as usize);
    }
    if src.len() < 4 {
        return None;
    }
    Some((src.get_u32() & 0x7fff_ffff) as usize)
}

/// The encoded length of the pair at the front of `encoded`, which
/// [`ParamBlock::push`] wrote, so it is whole.
fn first_pair_len(encoded: &[u8]) -> usize {
    let mut rest = encoded;
    let name_len = read_length(&mut rest).expect("a whole pair");
    let value_len = read_length(&mut rest).expect("a whole pair");
    encoded.len() - rest.len() + name_len + value_len
}

impl ParamBlock {
    pub const EMPTY: ParamBlock = ParamBlock { encoded: Vec::new() };

    pub fn push(&mut self, name: &[u8], value: &[u8]) -> Result<(), ParamTooLarge> {
        let len = pair_len(name, value);
        if len > MAX_CONTENT {
            return Err(ParamTooLarge { name: String::from_utf8_lossy(name).into_owned(), len });
        }
        let mut pair = BytesMut::with_capacity(len);
        put_length(&mut pair, name.len());
        put_length(&mut pair, value.len());
        pair.extend_from_slice(name);
        pair.extend_from_slice(value);
        self.encoded.extend_from_slice(&pair);
        Ok(())
    }

    /// Gives back spare capacity: blocks live as long as their connection.
    pub fn compact(mut self) -> ParamBlock {
        self.encoded.shrink_to_fit();
        self
    }

    /// Each pair's encoded bytes.
    pub fn pairs(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.encoded[..];
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (pair, after) = rest.split_at(first_pair_len(rest));
            rest = after;
            Some(pair)
        })
    }

    /// Every pair, decoded.
    pub fn pairs_owned(&self) -> Vec<(String, String)> {
        let decoded = self.pairs().filter_map(|pair| decode_pairs(pair)?.pop());
        decoded
            .map(|(n, v)| (String::from_utf8_lossy(&n).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            .collect()
    }

    /// The value of the first pair named `name`.
    pub fn get(&self, name: &[u8]) -> Option<Bytes> {
        self.pairs().filter_map(|pair| decode_pairs(pair)?.pop()).find(|(n, _)| n == name).map(|(_, value)| value)
    }

    /// The block as one run of FastCGI name-value pairs.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// A block from a run of pairs, as [`ParamBlock::encoded`] gives them.
    pub fn decode(encoded: &[u8]) -> Option<ParamBlock> {
        let mut block = ParamBlock::default();
        for (name, value) in decode_pairs(encoded)? {
            block.push(&name, &value).ok()?;
        }
        Some(block.compact())
    }

    pub fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }
}

/// Writes a whole RESPONDER request into `dst`, so it goes out in one write:
/// BEGIN_REQUEST (keep the connection), PARAMS records packed with whole
/// pairs from `blocks` in order, an empty PARAMS, STDIN records, an empty STDIN.
pub fn encode_request(dst: &mut BytesMut, request_id: u16, blocks: &[&ParamBlock], stdin: &[u8]) {
    let begin = [(ROLE_RESPONDER >> 8) as u8, ROLE_RESPONDER as u8, FLAG_KEEP_CONN, 0, 0, 0, 0, 0];
    put_record(dst, RecordType::BeginRequest as u8, request_id, &begin);

    let mut record_start = None::<usize>;
    for pair in blocks.iter().flat_map(|block| block.pairs()) {
        let fits = |start: &usize| dst.len() - start - HEADER_LEN + pair.len() <= MAX_CONTENT;
        if !record_start.as_ref().is_some_and(fits) {
            if let Some(full) = record_start {
                finish_params_record(dst, full, request_id);
            }
            record_start = Some(dst.len());
            put_header(dst, RecordType::Params as u8, request_id, 0, 0);
        }
        dst.extend_from_slice(pair);
    }
    if let Some(start) = record_start {
        finish_params_record(dst, start, request_id);
    }
    put_record(dst, RecordType::Params as u8, request_id, &[]);

    for chunk in chunks(stdin).filter(|c| !c.is_empty()) {
        put_record(dst, RecordType::Stdin as u8, request_id, chunk);
    }
    put_record(dst, RecordType::Stdin as u8, request_id, &[]);
}

/// Writes a whole response into `dst` (the app's side, for backends and
/// tests): STDOUT records, an empty STDOUT, then END_REQUEST with
/// `app_status` and REQUEST_COMPLETE.
pub fn encode_response(dst: &mut BytesMut, request_id: u16, stdout: &[u8], app_status: u32) {
    for chunk in chunks(stdout).filter(|c| !c.is_empty()) {
        put_record(dst, RecordType::Stdout as u8, request_id, chunk);
    }
    put_record(dst, RecordType::Stdout as u8, request_id, &[]);
    let status = app_status.to_be_bytes();
    let end = [status[0], status[1], status[2], status[3], 0, 0, 0, 0];
    put_record(dst, RecordType::EndRequest as u8, request_id, &end);
}

/// FCGI_ABORT_REQUEST: the client the request is for has gone.
pub fn encode_abort(dst: &mut BytesMut, request_id: u16) {
    put_record(dst, RecordType::AbortRequest as u8, request_id, &[]);
}

/// The same encoded request, asking the backend to close the connection
/// once it has answered (no FCGI_KEEP_CONN): one connection per request.
pub fn without_keep_conn(request: &[u8]) -> Vec<u8> {
    let mut request = request.to_vec();
    // BEGIN_REQUEST comes first: its header, then role (2 bytes), then flags.
    if let Some(flags) = request.get_mut(HEADER_LEN + 2) {
        *flags &= !FLAG_KEEP_CONN;
    }
    request
}

/// Whether a BEGIN_REQUEST asks to keep the connection open afterwards.
pub fn keeps_connection(begin: &Record) -> bool {
    begin.content.get(2).is_some_and(|flags| flags & FLAG_KEEP_CONN != 0)
}

/// Fills in the length and padding of the PARAMS record that starts at `start`.
fn finish_params_record(dst: &mut BytesMut, start: usize, request_id: u16) {
    let content_len = dst.len() - start - HEADER_LEN;
    let padding = (8 - content_len % 8) % 8;
    let mut header = BytesMut::with_capacity(HEADER_LEN);
    put_header(&mut header, RecordType::Params as u8, request_id, content_len, padding);
    dst[start..start + HEADER_LEN].copy_from_slice(&header);
    dst.put_bytes(0, padding);
}

/// Reads name-value pairs out of PARAMS content; `None` if it is malformed.
pub fn decode_pairs(mut content: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let mut pairs = Vec::new();
    while !content.is_empty() {
        let name_len = read_length(&mut content)?;
        let value_len = read_length(&mut content)?;
        if content.len() < name_len + value_len {
            return None;
        }
        let name = Bytes::copy_from_slice(&content[..name_len]);
        let value = Bytes::copy_from_slice(&content[name_len..name_len + value_len]);
        content.advance(name_len + value_len);
        pairs.push((name, value));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mut buf: BytesMut) -> Vec<Record> {
        let mut codec = RecordCodec;
        let mut records = Vec::new();
        while let Some(record) = codec.decode_eof(&mut buf).unwrap() {
            records.push(record);
        }
        assert!(buf.is_empty());
        records
    }

    fn pairs(records: &[Record]) -> Vec<(Bytes, Bytes)> {
        records
            .iter()
            .filter(|r| r.is(RecordType::Params))
            .flat_map(|r| decode_pairs(&r.content).expect("each record holds whole pairs"))
            .collect()
    }

    fn block(pairs: &[(&[u8], &[u8])]) -> ParamBlock {
        let mut block = ParamBlock::default();
        for (name, value) in pairs {
            block.push(name, value).unwrap();
        }
        block
    }

    #[test]
    fn request_round_trips() {
        let params: Vec<(&[u8], &[u8])> =
            vec![(b"SESSIONID", b"0123456789abcdef"), (b"EVENT", b"1"), (b"LONG", &[b'v'; 300])];
        let (first, rest) = (block(&params[..1]), block(&params[1..]));
        let mut buf = BytesMut::new();
        encode_request(&mut buf, 1, &[&first, &rest], b"hello");
        let records = decode_all(buf);
        let kinds: Vec<u8> = records.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [1, 4, 4, 5, 5]);
        assert_eq!(&records[0].content[..3], &[0, 1, FLAG_KEEP_CONN]);
        let decoded = pairs(&records);
        let expected: Vec<(Bytes, Bytes)> =
            params.iter().map(|(n, v)| (Bytes::copy_from_slice(n), Bytes::copy_from_slice(v))).collect();
        assert_eq!(decoded, expected);
        assert_eq!(&records[3].content[..], b"hello");
        assert!(records[4].content.is_empty());
    }

    #[test]
    fn never_splits_a_pair_across_records() {
        let value = vec![b'x'; 20_000];
        let params: Vec<(&[u8], &[u8])> = (0..10).map(|_| (&b"BIG"[..], &value[..])).collect();
        let mut buf = BytesMut::new();
        encode_request(&mut buf, 7, &[&block(&params)], b"");
        let records = decode_all(buf);
        let params_records: Vec<_> =
            records.iter().filter(|r| r.is(RecordType::Params) && !r.content.is_empty()).collect();
        assert!(params_records.len() >= 4, "20 KB pairs need several records");
        assert_eq!(pairs(&records).len(), 10);
        assert!(records.iter().all(|r| r.request_id == 7));
    }

    #[test]
    fn refuses_a_pair_larger_than_a_record() {
        let value = vec![b'x'; MAX_CONTENT];
        let err = ParamBlock::default().push(b"HUGE", &value).unwrap_err();
        assert_eq!(err.name, "HUGE");
    }

    #[test]
    fn large_stdin_is_chunked_and_records_are_padded() {
        let body = vec![7u8; 150_001];
        let mut buf = BytesMut::new();
        encode_request(&mut buf, 1, &[], &body);
        assert_eq!(buf.len() % 8, 0);
        let records = decode_all(buf);
        let stdin: Vec<u8> =
            records.iter().filter(|r| r.is(RecordType::Stdin)).flat_map(|r| r.content.to_vec()).collect();
        assert_eq!(stdin, body);
    }

    #[test]
    fn encoder_and_decoder_agree_and_wait_for_whole_records() {
        let record = Record {
            kind: RecordType::Stdout as u8,
            request_id: 3,
            content: Bytes::from_static(b"Status: 200\r\n\r\nok"),
        };
        let mut buf = BytesMut::new();
        RecordCodec.encode(record.clone(), &mut buf).unwrap();
        let mut partial = BytesMut::from(&buf[..buf.len() - 1]);
        assert_eq!(RecordCodec.decode(&mut partial).unwrap(), None);
        assert!(matches!(RecordCodec.decode_eof(&mut partial), Err(RecordError::Truncated)));
        assert_eq!(RecordCodec.decode(&mut buf).unwrap(), Some(record));
    }

    #[test]
    fn blocks_look_up_values_and_keep_pair_boundaries() {
        let params = block(&[(b"A", b"1"), (b"LONG", &[b'z'; 200])]);
        assert_eq!(params.get(b"LONG").as_deref(), Some(&[b'z'; 200][..]));
        assert_eq!(params.get(b"MISSING"), None);
        let pairs: Vec<&[u8]> = params.pairs().collect();
        assert_eq!(pairs[0], b"\x01\x01A1");
        assert_eq!(pairs[1].len(), 1 + 4 + 4 + 200);
    }

    #[test]
    fn response_round_trips() {
        let mut buf = BytesMut::new();
        let stdout = vec![b'y'; MAX_CONTENT + 10];
        encode_response(&mut buf, 9, &stdout, 3);
        let records = decode_all(buf);
        let kinds: Vec<u8> = records.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [6, 6, 6, 3]);
        let body: Vec<u8> =
            records.iter().filter(|r| r.is(RecordType::Stdout)).flat_map(|r| r.content.to_vec()).collect();
        assert_eq!(body, stdout);
        assert_eq!(&records[3].content[..], &[0, 0, 0, 3, 0, 0, 0, 0]);
    }

    #[test]
    fn begin_request_carries_keep_conn() {
        let mut buf = BytesMut::new();
        encode_request(&mut buf, 1, &[], b"");
        assert!(keeps_connection(&decode_all(buf)[0]));
    }

    #[test]
    fn wrong_version_is_an_error() {
        let mut buf = BytesMut::from(&[2u8, 6, 0, 1, 0, 0, 0, 0][..]);
        assert!(matches!(RecordCodec.decode(&mut buf), Err(RecordError::Version(2))));
    }
}
