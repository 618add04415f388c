//! The gateway's FastCGI client: `codec` is the record wire format,
//! `response` reads a CGI response out of STDOUT, `backend` keeps the
//! kept-alive connections to one backend and its health, `pool` shares
//! requests among backends by weight, with failover.

mod backend;
mod codec;
mod pool;
mod response;

pub use backend::{Abort, Address, Backend, BackendOptions, UpstreamError, REQUEST_ID};
pub use codec::{
    decode_pairs, encode_abort, encode_request, encode_response, keeps_connection, ParamBlock, ParamTooLarge, Record,
    RecordCodec, RecordType, MAX_CONTENT,
};
pub use pool::{BackendSpec, Pool, Upstreams, DEFAULT_POOL};
pub use response::CgiResponse;
