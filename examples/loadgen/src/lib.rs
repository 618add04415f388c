//! What loadgen shares with the end-to-end tests: its frame-level
//! WebSocket client with permessage-deflate, its SSE client, and another
//! process's figures from /proc.

pub mod proc;
pub mod raw_ws;
pub mod sse;
