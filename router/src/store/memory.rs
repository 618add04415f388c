use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::history::{Appended, Kept, MemoryHistory, Rule, Since};
use super::presence::{Changed, Joined, Left, MemoryPresence, Page};
use super::{StoreLook, StoreResult};
use protocol::cmd::Payload;
use protocol::SessionId;

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<Membership>,
    presence: MemoryPresence,
    history: MemoryHistory,
}

#[derive(Default)]
struct Lease {
    sessions: HashSet<SessionId>,
    /// `None` until the first renewal: dead, should it never come.
    until: Option<Instant>,
}

#[derive(Default)]
struct Membership {
    channels: HashMap<String, HashSet<SessionId>>,
    sessions: HashMap<SessionId, HashSet<String>>,
    users: HashMap<String, HashSet<SessionId>>,
    session_user: HashMap<SessionId, String>,
    /// Each gateway's sessions and lease, as in Redis: a gateway whose link
    /// is gone past its lease is dead, and its sessions end.
    gateways: HashMap<String, Lease>,
}

impl Membership {
    fn unbind(&mut self, id: &SessionId) {
        let Some(user) = self.session_user.remove(id) else { return };
        if let Some(sessions) = self.users.get_mut(&user) {
            sessions.remove(id);
            if sessions.is_empty() {
                self.users.remove(&user);
            }
        }
    }

    fn remove(&mut self, channel: &str, id: &SessionId) -> bool {
        let Some(members) = self.channels.get_mut(channel) else {
            return false;
        };
        let removed = members.remove(id);
        if members.is_empty() {
            self.channels.remove(channel);
        }
        removed
    }
}

impl MemoryStore {
    pub fn join(&self, channel: &str, ids: &[SessionId]) -> StoreResult<Vec<SessionId>> {
        let mut state = self.state.lock().unwrap();
        let mut added = Vec::new();
        for id in ids {
            if state.channels.entry(channel.to_owned()).or_default().insert(*id) {
                added.push(*id);
            }
            state.sessions.entry(*id).or_default().insert(channel.to_owned());
        }
        Ok(added)
    }

    pub fn leave(&self, channel: &str, ids: &[SessionId]) -> StoreResult<usize> {
        let mut state = self.state.lock().unwrap();
        let mut removed = 0;
        for id in ids {
            if state.remove(channel, id) {
                removed += 1;
            }
            if let Some(channels) = state.sessions.get_mut(id) {
                channels.remove(channel);
                if channels.is_empty() {
                    state.sessions.remove(id);
                }
            }
        }
        Ok(removed)
    }

    pub fn members(&self, channel: &str) -> StoreResult<Vec<SessionId>> {
        let state = self.state.lock().unwrap();
        Ok(state.channels.get(channel).map(|m| m.iter().copied().collect()).unwrap_or_default())
    }

    /// `channels` are what [`Store::forget`](super::Store::forget) says;
    /// memory knows them already.
    pub fn forget(&self, ids: &[SessionId], _channels: &[Vec<String>]) -> StoreResult<()> {
        let mut state = self.state.lock().unwrap();
        for id in ids {
            for channel in state.sessions.remove(id).unwrap_or_default() {
                state.remove(&channel, id);
            }
            state.unbind(id);
        }
        Ok(())
    }

    pub fn count(&self, channel: &str) -> StoreResult<usize> {
        Ok(self.state.lock().unwrap().channels.get(channel).map_or(0, HashSet::len))
    }

    pub fn session_channels(&self, id: &SessionId) -> StoreResult<Vec<String>> {
        let state = self.state.lock().unwrap();
        let mut channels: Vec<String> = state.sessions.get(id).map(|c| c.iter().cloned().collect()).unwrap_or_default();
        channels.sort();
        Ok(channels)
    }

    pub fn sessions_channels(&self, ids: &[SessionId]) -> StoreResult<Vec<Vec<String>>> {
        let state = self.state.lock().unwrap();
        Ok(ids
            .iter()
            .map(|id| state.sessions.get(id).map(|c| c.iter().cloned().collect()).unwrap_or_default())
            .collect())
    }

    pub fn bind_user(&self, id: &SessionId, user: &str) -> StoreResult<()> {
        let mut state = self.state.lock().unwrap();
        state.unbind(id);
        state.users.entry(user.to_owned()).or_default().insert(*id);
        state.session_user.insert(*id, user.to_owned());
        Ok(())
    }

    pub fn session_users(&self, ids: &[SessionId]) -> StoreResult<Vec<Option<String>>> {
        let state = self.state.lock().unwrap();
        Ok(ids.iter().map(|id| state.session_user.get(id).cloned()).collect())
    }

    pub fn user_sessions(&self, user: &str) -> StoreResult<Vec<SessionId>> {
        Ok(self.state.lock().unwrap().users.get(user).map(|s| s.iter().copied().collect()).unwrap_or_default())
    }

    pub fn channel_count(&self) -> StoreResult<usize> {
        Ok(self.state.lock().unwrap().channels.len())
    }

    pub fn gateway_sessions(&self, gateway: &str, ids: &[SessionId], connected: bool) -> StoreResult<()> {
        let mut state = self.state.lock().unwrap();
        let lease = state.gateways.entry(gateway.to_owned()).or_default();
        if connected {
            lease.sessions.extend(ids);
        } else {
            for id in ids {
                lease.sessions.remove(id);
            }
        }
        Ok(())
    }

    pub fn renew_leases(&self, gateways: &[String], lease: Duration) -> StoreResult<()> {
        let until = Instant::now() + lease;
        let mut state = self.state.lock().unwrap();
        for gateway in gateways {
            state.gateways.entry(gateway.clone()).or_default().until = Some(until);
        }
        Ok(())
    }

    pub fn reap_dead_gateway(&self) -> StoreResult<Option<(String, Vec<SessionId>)>> {
        let now = Instant::now();
        let gateways = &mut self.state.lock().unwrap().gateways;
        // As in Redis: a gateway whose lease was never renewed has none.
        let dead =
            gateways.iter().find(|(_, lease)| lease.until.is_none_or(|until| until <= now)).map(|(g, _)| g.clone());
        Ok(dead
            .and_then(|gateway| gateways.remove(&gateway).map(|lease| (gateway, lease.sessions.into_iter().collect()))))
    }

    pub fn channels_of(&self, ids: &[SessionId]) -> StoreResult<usize> {
        let state = self.state.lock().unwrap();
        let distinct: HashSet<&String> = ids.iter().filter_map(|id| state.sessions.get(id)).flatten().collect();
        Ok(distinct.len())
    }
}

/// The calls that the Redis store makes in files of their own, with its
/// signatures: [`super::Store`] calls either the same way.
impl MemoryStore {
    /// One router's memory keeps all it was told.
    pub fn look(&self) -> StoreResult<StoreLook> {
        Ok(StoreLook::default())
    }

    /// One router in memory knows only itself.
    pub fn routers(&self, name: &str, report: &str) -> StoreResult<Vec<(String, String)>> {
        Ok(vec![(name.to_owned(), report.to_owned())])
    }

    pub fn presence_join(&self, channel: &str, members: &[(SessionId, String)]) -> StoreResult<Joined> {
        Ok(self.presence.join(channel, members))
    }

    pub fn presence_count_users(&self, channel: &str, deltas: &[(String, i64)]) -> StoreResult<Vec<i64>> {
        Ok(self.presence.count_users(channel, deltas))
    }

    pub fn presence_leave(&self, channel: &str, ids: &[SessionId]) -> StoreResult<Left> {
        Ok(self.presence.leave(channel, ids))
    }

    pub fn presence_set_away(&self, pairs: &[(String, SessionId)], away: bool) -> StoreResult<Vec<Changed>> {
        Ok(self.presence.set_away(pairs, away))
    }

    pub fn presence_page(&self, channel: &str, after: Option<SessionId>, limit: usize) -> StoreResult<Page> {
        Ok(self.presence.page(channel, after, limit))
    }

    pub fn history_append(&self, channel: &str, payload: &Payload, rule: Rule) -> StoreResult<Appended> {
        Ok(self.history.append(channel, payload, rule))
    }

    pub fn history_sweep(&self) -> StoreResult<usize> {
        Ok(self.history.sweep())
    }

    pub fn history_read(&self, channel: &str, limit: usize) -> StoreResult<Vec<Kept>> {
        Ok(self.history.read(channel, limit))
    }

    pub fn history_since(&self, channel: &str, since: &str, limit: usize) -> StoreResult<Since> {
        Ok(self.history.since(channel, since, limit))
    }
}
