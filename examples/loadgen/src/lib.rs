//! What loadgen shares with the end-to-end tests: its frame-level
//! WebSocket client with permessage-deflate.

pub mod raw_ws;
