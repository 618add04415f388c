//! Presence: the members of a `presence-` channel, as whom each joined
//! (a user and info, kept as JSON) and whether its client is connected.
//! In memory, or in Redis beside the membership: `pr:<channel>` a hash of
//! session to member, `prz:<channel>` its session ids in order (a sorted
//! set, all scores 0), `pro:<channel>` the set of those whose client is
//! away. Each change says whether it changed anything, atomically, so
//! that of several routers that hear of one change (every gateway tells
//! every router), exactly one announces it. A listing is a page in
//! session id order after a cursor (the last id of the page before): it
//! costs the page, whatever the channel's size. A Pusher app's presence
//! channel also counts each user's connections (`pru:<channel>`, a hash
//! of user to count, changed atomically): Pusher announces a user's first
//! connection and its last, not every one.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use protocol::SessionId;

use super::redis::RedisStore;
use super::StoreResult;

/// Channels whose name starts so keep presence.
pub const PREFIX: &str = "presence-";

/// A `presence-` channel, native or a Pusher app's.
pub fn is_presence(channel: &str) -> bool {
    let name = protocol::pusher::split_fk_channel(channel).map_or(channel, |(_, pusher_channel)| pusher_channel);
    name.starts_with(PREFIX)
}

/// What a join changed: the sessions that were not members yet, and
/// whether they are the channel's first.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Joined {
    pub added: Vec<SessionId>,
    pub occupied: bool,
}

/// What a leave changed: the members that left, as they joined, and
/// whether the channel is empty now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Left {
    pub removed: Vec<(SessionId, String)>,
    pub vacated: bool,
}

/// A member as a listing gives it: its id, as it joined, and whether its
/// client is connected.
pub type Listed = (SessionId, String, bool);

/// A member whose client went away or came back: its channel, its id,
/// and as it joined.
pub type Changed = (String, SessionId, String);

/// A channel's members, in id order: as each joined, and whether its
/// client is connected.
type Members = BTreeMap<SessionId, (String, bool)>;

/// A page of a channel's members: the whole count, and up to the limit
/// after the cursor, in session id order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub count: usize,
    pub members: Vec<Listed>,
}

#[derive(Default)]
pub struct MemoryPresence {
    channels: Mutex<HashMap<String, Members>>,
    /// Per channel, each user's connections (Pusher apps' channels).
    users: Mutex<HashMap<String, HashMap<String, i64>>>,
}

impl MemoryPresence {
    /// Adds each `(user, delta)` to its user's connections in `channel`:
    /// the counts after, in order (a user at 0 is forgotten).
    pub fn count_users(&self, channel: &str, deltas: &[(String, i64)]) -> Vec<i64> {
        let mut channels = self.users.lock().unwrap();
        let users = channels.entry(channel.to_owned()).or_default();
        let counts = deltas
            .iter()
            .map(|(user, delta)| {
                let count = users.entry(user.clone()).or_default();
                *count += delta;
                let after = *count;
                if after <= 0 {
                    users.remove(user);
                }
                after
            })
            .collect();
        if users.is_empty() {
            channels.remove(channel);
        }
        counts
    }

    pub fn join(&self, channel: &str, members: &[(SessionId, String)]) -> Joined {
        let mut channels = self.channels.lock().unwrap();
        let kept = channels.entry(channel.to_owned()).or_default();
        let mut joined = Joined::default();
        for (id, member) in members {
            match kept.get_mut(id) {
                Some((_, online)) => *online = true,
                None => {
                    kept.insert(*id, (member.clone(), true));
                    joined.added.push(*id);
                }
            }
        }
        joined.occupied = !joined.added.is_empty() && kept.len() == joined.added.len();
        joined
    }

    pub fn leave(&self, channel: &str, ids: &[SessionId]) -> Left {
        let mut channels = self.channels.lock().unwrap();
        let Some(kept) = channels.get_mut(channel) else { return Left::default() };
        let removed: Vec<_> = ids.iter().filter_map(|id| kept.remove(id).map(|(member, _)| (*id, member))).collect();
        let vacated = !removed.is_empty() && kept.is_empty();
        if kept.is_empty() {
            channels.remove(channel);
        }
        Left { removed, vacated }
    }

    pub fn set_away(&self, pairs: &[(String, SessionId)], away: bool) -> Vec<Changed> {
        let mut channels = self.channels.lock().unwrap();
        let mut changed = Vec::new();
        for (channel, id) in pairs {
            if let Some((member, online)) = channels.get_mut(channel).and_then(|kept| kept.get_mut(id)) {
                if *online == away {
                    *online = !away;
                    changed.push((channel.clone(), *id, member.clone()));
                }
            }
        }
        changed
    }

    pub fn page(&self, channel: &str, after: Option<SessionId>, limit: usize) -> Page {
        let channels = self.channels.lock().unwrap();
        let Some(kept) = channels.get(channel) else { return Page::default() };
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let members = kept.range((from, Bound::Unbounded)).take(limit);
        Page {
            count: kept.len(),
            members: members.map(|(id, (member, online))| (*id, member.clone(), *online)).collect(),
        }
    }
}

/// `HINCRBY` each user by its delta, forgetting those at 0: the counts.
const COUNT_USERS: &str = r"
local counts = {}
for i = 1, #ARGV, 2 do
  local n = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[i]) end
  counts[#counts + 1] = n
end
return counts
";
static COUNT_USERS_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(COUNT_USERS));

impl RedisStore {
    pub async fn presence_count_users(&self, channel: &str, deltas: &[(String, i64)]) -> StoreResult<Vec<i64>> {
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        let mut script = COUNT_USERS_SCRIPT.key(self.channel_scoped("pru", channel));
        for (user, delta) in deltas {
            script.arg(user).arg(delta);
        }
        Ok(script.invoke_async(&mut self.connection()).await?)
    }

    fn presence_key(&self, channel: &str) -> String {
        self.channel_scoped("pr", channel)
    }

    fn away_key(&self, channel: &str) -> String {
        self.channel_scoped("pro", channel)
    }

    fn order_key(&self, channel: &str) -> String {
        self.channel_scoped("prz", channel)
    }

    pub async fn presence_join(&self, channel: &str, members: &[(SessionId, String)]) -> StoreResult<Joined> {
        let key = self.presence_key(channel);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (id, member) in members {
            pipe.hset_nx(&key, id.as_str(), member);
        }
        let ids: Vec<&str> = members.iter().map(|(id, _)| id.as_str()).collect();
        let ordered: Vec<(u8, &str)> = ids.iter().map(|id| (0, *id)).collect();
        pipe.zadd_multiple(self.order_key(channel), &ordered).ignore();
        pipe.srem(self.away_key(channel), ids).ignore().hlen(&key);
        let mut results: Vec<usize> = self.query_fenced(self.shards().of(channel), pipe).await?;
        let total = results.pop().unwrap_or(0);
        let added: Vec<SessionId> =
            members.iter().zip(results).filter(|(_, set)| *set == 1).map(|((id, _), _)| *id).collect();
        let occupied = !added.is_empty() && total == added.len();
        Ok(Joined { added, occupied })
    }

    pub async fn presence_leave(&self, channel: &str, ids: &[SessionId]) -> StoreResult<Left> {
        let key = self.presence_key(channel);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for id in ids {
            pipe.hget(&key, id.as_str()).hdel(&key, id.as_str());
        }
        let names: Vec<&str> = ids.iter().map(SessionId::as_str).collect();
        pipe.zrem(self.order_key(channel), &names).ignore();
        pipe.srem(self.away_key(channel), names).ignore().hlen(&key);
        let mut results: Vec<redis::Value> = pipe.query_async(&mut self.connection()).await?;
        let total: usize = redis::from_redis_value(results.pop().unwrap_or(redis::Value::Int(0)))?;
        let changed = members_changed(results)?;
        let removed: Vec<_> = ids.iter().zip(changed).filter_map(|(id, member)| Some((*id, member?))).collect();
        let vacated = !removed.is_empty() && total == 0;
        Ok(Left { removed, vacated })
    }

    pub async fn presence_set_away(&self, pairs: &[(String, SessionId)], away: bool) -> StoreResult<Vec<Changed>> {
        let changes = self.per_shard(
            pairs.len(),
            |n| self.shards().of(&pairs[n].0),
            2,
            |pipe, n| {
                let (channel, id) = &pairs[n];
                pipe.atomic().hget(self.presence_key(channel), id.as_str());
                match away {
                    true => pipe.sadd(self.away_key(channel), id.as_str()),
                    false => pipe.srem(self.away_key(channel), id.as_str()),
                };
            },
        );
        let changed = members_changed(changes.await?)?;
        Ok(pairs
            .iter()
            .zip(changed)
            .filter_map(|((channel, id), member)| Some((channel.clone(), *id, member?)))
            .collect())
    }

    /// A page after `after`: the ids from the ordered set, then their
    /// members and whether each is away, in one round trip each.
    pub async fn presence_page(&self, channel: &str, after: Option<SessionId>, limit: usize) -> StoreResult<Page> {
        let from = after.map_or("-".to_owned(), |id| format!("({id}"));
        let (count, ids): (usize, Vec<String>) = redis::pipe()
            .hlen(self.presence_key(channel))
            .zrangebylex_limit(self.order_key(channel), from, "+", 0, limit as isize)
            .query_async(&mut self.connection())
            .await?;
        if ids.is_empty() {
            return Ok(Page { count, members: Vec::new() });
        }
        let (kept, away): (Vec<Option<String>>, Vec<bool>) = redis::pipe()
            .hmget(self.presence_key(channel), &ids)
            .smismember(self.away_key(channel), &ids)
            .query_async(&mut self.connection())
            .await?;
        let members = ids
            .iter()
            .zip(kept)
            .zip(away)
            .filter_map(|((id, member), away)| Some((SessionId::parse(id.as_bytes()).ok()?, member?, !away)));
        Ok(Page { count, members: members.collect() })
    }
}

/// Answers in pairs, a member's HGET and a change's count (HDEL, SADD,
/// SREM): per pair, the member if it was one and the change happened.
fn members_changed(results: Vec<redis::Value>) -> StoreResult<Vec<Option<String>>> {
    let mut changed = Vec::with_capacity(results.len() / 2);
    let mut results = results.into_iter();
    while let (Some(member), Some(count)) = (results.next(), results.next()) {
        let member: Option<String> = redis::from_redis_value(member)?;
        let count: usize = redis::from_redis_value(count)?;
        changed.push(member.filter(|_| count == 1));
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_joins_once_goes_away_comes_back_and_leaves_once() {
        let presence = MemoryPresence::default();
        let (a, b) = (SessionId::from_u64(1), SessionId::from_u64(2));
        let ann = || (a, r#"{"user":"ann"}"#.to_owned());
        assert_eq!(presence.join("presence-q", &[ann()]), Joined { added: vec![a], occupied: true });
        assert_eq!(presence.join("presence-q", &[ann(), (b, "{}".into())]), Joined { added: vec![b], occupied: false });
        let pair = [("presence-q".to_owned(), a)];
        assert_eq!(presence.set_away(&pair, true).len(), 1);
        assert!(presence.set_away(&pair, true).is_empty(), "away once");
        let listed = presence.page("presence-q", None, 10);
        assert_eq!(listed, Page { count: 2, members: vec![(a, ann().1, false), (b, "{}".into(), true)] });
        assert_eq!(presence.page("presence-q", None, 1).members, [(a, ann().1, false)], "a page, in id order");
        assert_eq!(presence.page("presence-q", Some(a), 10).members, [(b, "{}".into(), true)], "the page after a");
        assert_eq!(presence.set_away(&pair, false).len(), 1);
        let left = presence.leave("presence-q", &[a]);
        assert_eq!(left, Left { removed: vec![ann()], vacated: false });
        assert_eq!(presence.leave("presence-q", &[a, b]), Left { removed: vec![(b, "{}".into())], vacated: true });
        assert_eq!(presence.leave("presence-q", &[b]), Left::default(), "left once");
        assert_eq!(presence.page("presence-q", None, 10), Page::default());
        let (ann, bob) = (|| ("ann".to_owned(), 1), || ("bob".to_owned(), 1));
        assert_eq!(presence.count_users("presence-q", &[ann(), bob(), ann()]), [1, 1, 2]);
        assert_eq!(presence.count_users("presence-q", &[("ann".into(), -1), ("bob".into(), -1)]), [1, 0]);
        assert_eq!(presence.count_users("presence-q", &[bob()]), [1], "bob forgotten at 0, back at 1");
    }
}
