//! What loadgen shares with the end-to-end tests: its frame-level
//! WebSocket client with permessage-deflate, and its SSE client.

pub mod raw_ws;
pub mod sse;
