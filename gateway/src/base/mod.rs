//! The ground floor: types every phase of the gateway shares. It imports
//! nothing else from the crate, so anything may import it.

pub mod close;
pub mod message;
pub mod transport;
