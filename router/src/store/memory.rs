use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::history::MemoryHistory;
use super::presence::MemoryPresence;
use super::StoreResult;
use protocol::SessionId;

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<Membership>,
    pub presence: MemoryPresence,
    pub history: MemoryHistory,
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

    pub fn forget(&self, ids: &[SessionId]) -> StoreResult<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_follows_join_leave_and_forget() {
        let store = MemoryStore::default();
        let (a, b) = (SessionId::from_u64(1), SessionId::from_u64(2));
        assert_eq!(store.join("room", &[a, b]).unwrap(), [a, b]);
        assert!(store.join("room", &[a]).unwrap().is_empty());
        store.join("other", &[a]).unwrap();
        assert_eq!(store.channel_count().unwrap(), 2);
        assert_eq!(store.channels_of(&[a, b]).unwrap(), 2);

        assert_eq!(store.leave("room", &[b]).unwrap(), 1);
        assert_eq!(store.members("room").unwrap(), vec![a]);

        store.forget(&[a]).unwrap();
        assert!(store.members("room").unwrap().is_empty());
        assert_eq!(store.channel_count().unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gateway_not_renewed_within_its_lease_is_reaped_with_its_sessions() {
        let store = MemoryStore::default();
        let (a, b, c) = (SessionId::from_u64(1), SessionId::from_u64(2), SessionId::from_u64(3));
        store.gateway_sessions("1:1", &[a, b, c], true).unwrap();
        store.gateway_sessions("1:1", &[c], false).unwrap();
        store.gateway_sessions("2:2", &[SessionId::from_u64(4)], true).unwrap();
        let lease = Duration::from_secs(10);
        store.renew_leases(&["1:1".into(), "2:2".into()], lease).unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        store.renew_leases(&["2:2".into()], lease).unwrap();
        assert_eq!(store.reap_dead_gateway().unwrap(), None, "within the lease");
        tokio::time::advance(Duration::from_secs(6)).await;
        let (gateway, mut ids) = store.reap_dead_gateway().unwrap().expect("1:1's lease ran out");
        ids.sort();
        assert_eq!((gateway.as_str(), ids), ("1:1", vec![a, b]));
        assert_eq!(store.reap_dead_gateway().unwrap(), None, "reaped once; 2:2 was renewed");
    }

    #[test]
    fn users_bind_move_and_end_with_their_sessions() {
        let store = MemoryStore::default();
        let (a, b) = (SessionId::from_u64(1), SessionId::from_u64(2));
        store.bind_user(&a, "ann").unwrap();
        store.bind_user(&b, "ann").unwrap();
        let mut sessions = store.user_sessions("ann").unwrap();
        sessions.sort();
        assert_eq!(sessions, [a, b]);
        store.bind_user(&b, "bob").unwrap();
        assert_eq!(store.user_sessions("ann").unwrap(), [a], "binding again moves the session");
        store.forget(&[a]).unwrap();
        assert!(store.user_sessions("ann").unwrap().is_empty());
        assert_eq!(store.user_sessions("bob").unwrap(), [b]);
    }
}
