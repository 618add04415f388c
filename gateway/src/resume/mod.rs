//! Session resume, in one place: the token a client presents (`token`),
//! what a session keeps so that its client misses nothing (`replay`),
//! within one budget for the whole gateway (`budget`). The hand-over that
//! moves a session to a new connection, on this gateway or through the
//! routers from another, is `crate::handover`.

pub mod budget;
pub mod replay;
pub mod token;
