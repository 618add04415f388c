//! The wire between the parts: fooking's binary router protocol, shared by
//! the router, the gateways that link to it and the backends that command
//! it, and the JSON its HTTP API speaks. A Rust backend needs only this
//! crate (with the `client` feature for [`RouterClient`]).
//!
//! `frame` is the message model, `codec` turns bytes into frames and back,
//! `session_id` is the 16-hex-character id every frame talks about,
//! `hello` is the AUTH frame that opens a connection, `heartbeat` keeps a
//! gateway link alive (and `Liveness` is each side's clock for it), `interest` tells a router which gateways hold a
//! channel's members, `occupancy` tells a gateway that a presence channel
//! filled or emptied, `status` is a gateway's report for the operator's page, `sync` is the
//! barrier that makes a join seen through every router, `kept` the offsets
//! that make history at a join exact, `link` each side's reading of the
//! link's frames, parsed once, `handover` carries a resumed session from one
//! gateway to another, `cmd` is each backend command's layout, in frames
//! and in JSON, and `signing` the HMAC signatures tokens carry.

#[cfg(feature = "client")]
pub mod client;
pub mod cmd;
mod codec;
mod frame;
pub mod handover;
mod heartbeat;
mod hello;
mod interest;
mod kept;
mod link;
mod member_join;
mod occupancy;
pub mod pusher;
mod session_id;
pub mod signing;
pub mod status;
mod sync;
mod wire_enum;

#[cfg(feature = "client")]
pub use client::RouterClient;
pub use codec::{FrameCodec, FrameError, DEFAULT_MAX_DATA, MAX_BEFORE_AUTH};
pub use frame::{encode_ids, Frame, FrameKind, MAX_IDS_PER_FRAME};
pub use heartbeat::{Due, Heartbeat, Liveness, DEFAULT_HEARTBEAT_MS};
pub use hello::{token_matches, Hello};
pub use interest::Interest;
pub use kept::{KeptEnd, KeptPub, Offset};
pub use link::{ToGateway, ToRouter};
pub use member_join::MemberJoin;
pub use occupancy::Occupancy;
pub use session_id::{InvalidSessionId, SessionId};
pub use status::{BackendStatus, GatewayStatus, SessionDescription};
pub use sync::Sync;
