//! A kept channel's seam: held while one of its messages is appended to
//! the store and published, so this router sends a channel's messages in
//! their offsets' order (a gateway drops what a joiner's history held by
//! offset, see `protocol::kept`). Channels share 64 locks.

use std::hash::BuildHasher;

use tokio::sync::{Mutex, MutexGuard};

const SEAMS: usize = 64;

pub struct Seams {
    locks: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Seams {
    fn default() -> Seams {
        Seams { locks: (0..SEAMS).map(|_| Mutex::new(())).collect(), hasher: Default::default() }
    }
}

impl Seams {
    pub async fn hold(&self, channel: &str) -> MutexGuard<'_, ()> {
        self.locks[self.hasher.hash_one(channel) as usize % self.locks.len()].lock().await
    }
}
