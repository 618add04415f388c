//! The router's two listeners: fooking's binary protocol (gateways and
//! backends) and the JSON HTTP API (backends, curl).

pub mod arrival;
pub mod binary;
pub mod guard;
pub mod http;
