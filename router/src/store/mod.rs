//! Channel membership: who is in which channel.
//!
//! In memory for a single box, or in Redis so that several routers share
//! one truth. Each gateway's sessions are kept here too, under a lease the
//! routers that link it renew: a gateway that dies without a word is found
//! when its lease runs out, and its sessions are ended for it. (Which
//! gateway to push to is the hub's: every gateway reports its sessions to
//! every router.)

pub mod history;
mod memory;
pub mod presence;
mod redis;
pub mod shards;

use protocol::cmd::Payload;
use protocol::SessionId;

use self::history::{Appended, Kept, Rule, Since};
pub use self::memory::MemoryStore;
use self::presence::{Changed, Joined, Left, Page};
pub use self::redis::RedisStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("membership store unavailable: {0}")]
    Unavailable(String),
}

impl From<::redis::RedisError> for StoreError {
    fn from(err: ::redis::RedisError) -> Self {
        StoreError::Unavailable(err.to_string())
    }
}

impl From<::redis::ParsingError> for StoreError {
    fn from(err: ::redis::ParsingError) -> Self {
        StoreError::Unavailable(format!("an unexpected answer from redis: {err}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One look at whether the store kept what it was told: see
/// [`RedisStore::look`] and [`resync_reason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreLook {
    pub empty: bool,
    pub rolled_back: bool,
    pub failed_over: bool,
}

/// Why the gateways must report every membership again after `look`, if
/// they must; `first_look` is the router's first (an empty store is then
/// a new one, not a loss). Each kind of move brings back what the store
/// confirmed and lost: a restart without its data, a replica promoted
/// without the last writes (Cluster or Sentinels), a flush, an old snapshot.
pub fn resync_reason(look: StoreLook, first_look: bool) -> Option<&'static str> {
    match look {
        StoreLook { empty: true, .. } if first_look => Some("the store is empty"),
        StoreLook { empty: true, .. } => Some("the store lost its data"),
        StoreLook { failed_over: true, .. } => Some("redis failed over to a new master"),
        StoreLook { rolled_back: true, .. } => Some("the store lost writes it had confirmed"),
        _ => None,
    }
}

/// One handle over either backend, each with the same calls (memory's
/// answer at once); `match` instead of a trait object keeps the async
/// methods plain. `e2e/tests/store_contract.rs` runs one contract against
/// memory, a Redis and a Redis Cluster.
pub enum Store {
    Memory(Box<MemoryStore>),
    Redis(RedisStore),
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Memory($store) => $call,
            Store::Redis($store) => $call.await,
        }
    };
}

impl Store {
    /// Adds `ids` to `channel`; returns those that were not members yet.
    pub async fn join(&self, channel: &str, ids: &[SessionId]) -> StoreResult<Vec<SessionId>> {
        dispatch!(self, s => s.join(channel, ids))
    }

    /// Whether several routers may share it.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// Removes `ids` from `channel`; returns how many were members.
    pub async fn leave(&self, channel: &str, ids: &[SessionId]) -> StoreResult<usize> {
        dispatch!(self, s => s.leave(channel, ids))
    }

    pub async fn members(&self, channel: &str) -> StoreResult<Vec<SessionId>> {
        dispatch!(self, s => s.members(channel))
    }

    /// Drops ended sessions from every channel and user binding.
    /// `channels` are each session's, as [`Store::sessions_channels`] just
    /// read them (the caller announced their presence leaves from them).
    pub async fn forget(&self, ids: &[SessionId], channels: &[Vec<String>]) -> StoreResult<()> {
        dispatch!(self, s => s.forget(ids, channels))
    }

    pub async fn count(&self, channel: &str) -> StoreResult<usize> {
        dispatch!(self, s => s.count(channel))
    }

    /// The channels one session is in, sorted.
    pub async fn session_channels(&self, id: &SessionId) -> StoreResult<Vec<String>> {
        dispatch!(self, s => s.session_channels(id))
    }

    /// The channels of each of `ids`, in one call.
    pub async fn sessions_channels(&self, ids: &[SessionId]) -> StoreResult<Vec<Vec<String>>> {
        dispatch!(self, s => s.sessions_channels(ids))
    }

    /// Binds a session to a user id (a session has one user; binding again moves it).
    pub async fn bind_user(&self, id: &SessionId, user: &str) -> StoreResult<()> {
        dispatch!(self, s => s.bind_user(id, user))
    }

    pub async fn user_sessions(&self, user: &str) -> StoreResult<Vec<SessionId>> {
        dispatch!(self, s => s.user_sessions(user))
    }

    /// Records which gateway holds sessions, so that if it dies without a
    /// word its sessions can be ended for it.
    pub async fn gateway_sessions(&self, gateway: &str, ids: &[SessionId], connected: bool) -> StoreResult<()> {
        dispatch!(self, s => s.gateway_sessions(gateway, ids, connected))
    }

    /// Renews the leases of the gateways linked to this router.
    pub async fn renew_leases(&self, gateways: &[String], lease: std::time::Duration) -> StoreResult<()> {
        dispatch!(self, s => s.renew_leases(gateways, lease))
    }

    /// Claims one gateway whose lease ran out and takes its sessions: this
    /// router then ends them. `None` when there is none to claim.
    pub async fn reap_dead_gateway(&self) -> StoreResult<Option<(String, Vec<SessionId>)>> {
        dispatch!(self, s => s.reap_dead_gateway())
    }

    /// What the store kept of what it was told, since the last look (see
    /// [`RedisStore::look`]). An in-memory store keeps all of it.
    pub async fn look(&self) -> StoreResult<StoreLook> {
        dispatch!(self, s => s.look())
    }

    /// Adds presence members (each with its member JSON) to `channel`.
    pub async fn presence_join(&self, channel: &str, members: &[(SessionId, String)]) -> StoreResult<Joined> {
        dispatch!(self, s => s.presence_join(channel, members))
    }

    /// Adds each `(user, delta)` to its user's connections in `channel`,
    /// atomically: the counts after, in order.
    pub async fn presence_count_users(&self, channel: &str, deltas: &[(String, i64)]) -> StoreResult<Vec<i64>> {
        dispatch!(self, s => s.presence_count_users(channel, deltas))
    }

    pub async fn presence_leave(&self, channel: &str, ids: &[SessionId]) -> StoreResult<Left> {
        dispatch!(self, s => s.presence_leave(channel, ids))
    }

    /// Marks members away (their client dropped) or back, per (channel,
    /// session); returns those that changed, with their member JSON.
    pub async fn presence_set_away(&self, pairs: &[(String, SessionId)], away: bool) -> StoreResult<Vec<Changed>> {
        dispatch!(self, s => s.presence_set_away(pairs, away))
    }

    /// Up to `limit` members after `after`, in session id order, and the count.
    pub async fn presence_page(&self, channel: &str, after: Option<SessionId>, limit: usize) -> StoreResult<Page> {
        dispatch!(self, s => s.presence_page(channel, after, limit))
    }

    /// The user each of `ids` is bound to, if any.
    pub async fn session_users(&self, ids: &[SessionId]) -> StoreResult<Vec<Option<String>>> {
        dispatch!(self, s => s.session_users(ids))
    }

    pub async fn history_append(&self, channel: &str, payload: &Payload, rule: Rule) -> StoreResult<Appended> {
        dispatch!(self, s => s.history_append(channel, payload, rule))
    }

    /// Forgets channels whose history expired; what all kept channels cost now.
    pub async fn history_sweep(&self) -> StoreResult<usize> {
        dispatch!(self, s => s.history_sweep())
    }

    /// The newest `limit` messages `channel` keeps, oldest first; after
    /// offset `since` when given, with whether that offset is still kept.
    pub async fn history(
        &self,
        channel: &str,
        since: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<Kept>, Option<bool>)> {
        let Some(since) = since else {
            return Ok((dispatch!(self, s => s.history_read(channel, limit))?, None));
        };
        let Since { entries, recovered } = dispatch!(self, s => s.history_since(channel, since, limit))?;
        Ok((entries, Some(recovered)))
    }

    /// Notes this router's report, JSON, and returns every router's that
    /// shares the store, by name; one in memory knows only itself.
    pub async fn routers(&self, name: &str, report: &str) -> StoreResult<Vec<(String, String)>> {
        dispatch!(self, s => s.routers(name, report))
    }

    /// Channels with at least one member.
    pub async fn channel_count(&self) -> StoreResult<usize> {
        dispatch!(self, s => s.channel_count())
    }

    /// Distinct channels that any of `ids` is in.
    pub async fn channels_of(&self, ids: &[SessionId]) -> StoreResult<usize> {
        dispatch!(self, s => s.channels_of(ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_move_that_may_lose_what_was_confirmed_resyncs_and_nothing_else_does() {
        let look = |empty, rolled_back, failed_over| StoreLook { empty, rolled_back, failed_over };
        assert_eq!(resync_reason(look(false, false, false), true), None, "a store that kept it all");
        assert_eq!(resync_reason(look(false, false, false), false), None);
        assert_eq!(resync_reason(look(true, false, false), true), Some("the store is empty"), "new");
        assert_eq!(resync_reason(look(true, true, false), false), Some("the store lost its data"), "a restart");
        let promoted = resync_reason(look(false, true, false), false);
        assert_eq!(
            promoted,
            Some("the store lost writes it had confirmed"),
            "a Cluster's replica promoted without them"
        );
        let sentinels = resync_reason(look(false, false, true), false);
        assert_eq!(sentinels, Some("redis failed over to a new master"), "the Sentinels moved, whatever it lost");
    }
}
