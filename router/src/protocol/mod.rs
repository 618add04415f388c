//! fooking's binary router protocol: the wire format shared by the router,
//! the gateways that link to it and the backends that command it.
//!
//! `frame` is the message model, `codec` turns bytes into frames and back,
//! `session_id` is the 16-hex-character id every frame talks about,
//! `hello` is the AUTH frame that opens a connection, `heartbeat` keeps a
//! gateway link alive, `handover` carries a resumed session from one
//! gateway to another.

mod codec;
mod frame;
pub mod handover;
mod heartbeat;
mod hello;
mod session_id;

pub use codec::{FrameCodec, FrameError, DEFAULT_MAX_DATA};
pub use frame::{encode_ids, Frame, FrameKind, MAX_IDS_PER_FRAME};
pub use heartbeat::{Heartbeat, DEFAULT_HEARTBEAT_MS};
pub use hello::{token_matches, Hello};
pub use session_id::{InvalidSessionId, SessionId};
