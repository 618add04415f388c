//! Where the queue keeps accounts and lines: in process, or in Redis so
//! that several app processes behind one gateway act as one. The steps
//! that must not interleave (admit or queue; free a slot and admit the
//! next) are one Lua script each in Redis, one lock in process.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use protocol::SessionId;

pub type StoreResult<T> = Result<T, redis::RedisError>;

/// Where a session stands after asking to play.
#[derive(Debug, PartialEq, Eq)]
pub enum Entered {
    Admitted,
    /// Its index in the line (0: next to go in).
    Queued(usize),
}

/// What freeing a player's slot did: who was let in, and the line after.
pub struct Freed {
    pub region: String,
    pub admitted: Option<SessionId>,
    pub line: Vec<SessionId>,
}

pub enum QueueStore {
    Memory(Mutex<State>),
    Redis { conn: runtime::Redis, prefix: String },
}

#[derive(Default)]
pub struct State {
    accounts: HashMap<String, (u64, String)>,
    next_uid: u64,
    admitted: HashMap<String, HashSet<u64>>,
    lines: HashMap<String, VecDeque<(SessionId, u64)>>,
    region_of: HashMap<u64, String>,
}

const ENTER: &str = r"
-- KEYS: in, line, region_of, waiting_of; ARGV: uid, session, capacity, region
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 or redis.call('SCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
  return -1
end
local entry = ARGV[2] .. ':' .. ARGV[1]
local pos = redis.call('LPOS', KEYS[2], entry)
if not pos then
  pos = redis.call('RPUSH', KEYS[2], entry) - 1
  redis.call('HSET', KEYS[4], ARGV[2], ARGV[4] .. '|' .. entry)
end
return pos
";

const OFFLINE: &str = r"
-- KEYS: region_of, waiting_of; ARGV: uid, prefix
local region = redis.call('HGET', KEYS[1], ARGV[1])
if not region then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
local admitted = ARGV[2] .. 'in:' .. region
local line = ARGV[2] .. 'line:' .. region
redis.call('SREM', admitted, ARGV[1])
local next = redis.call('LPOP', line)
if next then
  local session, uid = string.match(next, '^(.*):(%d+)$')
  redis.call('SADD', admitted, uid)
  redis.call('HSET', KEYS[1], uid, region)
  redis.call('HDEL', KEYS[2], session)
else
  next = ''
end
return {region, next, unpack(redis.call('LRANGE', line, 0, -1))}
";

const LEAVE: &str = r"
-- KEYS: waiting_of; ARGV: session, prefix
local found = redis.call('HGET', KEYS[1], ARGV[1])
if not found then return {} end
redis.call('HDEL', KEYS[1], ARGV[1])
local region, entry = string.match(found, '^([^|]*)|(.*)$')
local line = ARGV[2] .. 'line:' .. region
redis.call('LREM', line, 1, entry)
return redis.call('LRANGE', line, 0, -1)
";

/// `session:uid` entries as their sessions.
fn sessions(entries: &[String]) -> Vec<SessionId> {
    entries.iter().filter_map(|e| e.split(':').next()?.parse().ok()).collect()
}

impl QueueStore {
    fn key(prefix: &str, name: &str) -> String {
        format!("{prefix}{name}")
    }

    /// A new account's uid, or `None` if the name is taken.
    pub async fn create_account(&self, name: &str, hash: &str) -> StoreResult<Option<u64>> {
        match self {
            QueueStore::Memory(state) => {
                let mut state = state.lock().unwrap();
                if state.accounts.contains_key(name) {
                    return Ok(None);
                }
                state.next_uid += 1;
                let uid = state.next_uid;
                state.accounts.insert(name.to_owned(), (uid, hash.to_owned()));
                Ok(Some(uid))
            }
            QueueStore::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let uid: u64 = redis::cmd("INCR").arg(Self::key(prefix, "uid")).query_async(&mut conn).await?;
                let created: bool = redis::cmd("HSETNX")
                    .arg(Self::key(prefix, "accounts"))
                    .arg(name)
                    .arg(format!("{uid}:{hash}"))
                    .query_async(&mut conn)
                    .await?;
                Ok(created.then_some(uid))
            }
        }
    }

    pub async fn account(&self, name: &str) -> StoreResult<Option<(u64, String)>> {
        match self {
            QueueStore::Memory(state) => Ok(state.lock().unwrap().accounts.get(name).cloned()),
            QueueStore::Redis { conn, prefix } => {
                let raw: Option<String> = redis::cmd("HGET")
                    .arg(Self::key(prefix, "accounts"))
                    .arg(name)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(raw.and_then(|raw| {
                    let (uid, hash) = raw.split_once(':')?;
                    Some((uid.parse().ok()?, hash.to_owned()))
                }))
            }
        }
    }

    pub async fn enter(&self, session: SessionId, uid: u64, region: &str, capacity: usize) -> StoreResult<Entered> {
        match self {
            QueueStore::Memory(state) => {
                let mut state = state.lock().unwrap();
                let admitted = state.admitted.entry(region.to_owned()).or_default();
                if admitted.contains(&uid) || admitted.len() < capacity {
                    admitted.insert(uid);
                    state.region_of.insert(uid, region.to_owned());
                    return Ok(Entered::Admitted);
                }
                let line = state.lines.entry(region.to_owned()).or_default();
                let index = line.iter().position(|(s, _)| *s == session).unwrap_or_else(|| {
                    line.push_back((session, uid));
                    line.len() - 1
                });
                Ok(Entered::Queued(index))
            }
            QueueStore::Redis { conn, prefix } => {
                let keys = [format!("in:{region}"), format!("line:{region}"), "region_of".into(), "waiting_of".into()];
                let enter = redis::Script::new(ENTER);
                let mut script = enter.prepare_invoke();
                for key in &keys {
                    script.key(Self::key(prefix, key));
                }
                let pos: i64 = script
                    .arg(uid)
                    .arg(session.as_str())
                    .arg(capacity)
                    .arg(region)
                    .invoke_async(&mut conn.clone())
                    .await?;
                Ok(if pos < 0 { Entered::Admitted } else { Entered::Queued(pos as usize) })
            }
        }
    }

    /// Takes a session out of any line; returns that line as it is now.
    pub async fn leave_line(&self, session: SessionId) -> StoreResult<Vec<SessionId>> {
        match self {
            QueueStore::Memory(state) => {
                let mut state = state.lock().unwrap();
                for line in state.lines.values_mut() {
                    if let Some(i) = line.iter().position(|(s, _)| *s == session) {
                        line.remove(i);
                        return Ok(line.iter().map(|(s, _)| *s).collect());
                    }
                }
                Ok(Vec::new())
            }
            QueueStore::Redis { conn, prefix } => {
                let entries: Vec<String> = redis::Script::new(LEAVE)
                    .key(Self::key(prefix, "waiting_of"))
                    .arg(session.as_str())
                    .arg(prefix)
                    .invoke_async(&mut conn.clone())
                    .await?;
                Ok(sessions(&entries))
            }
        }
    }

    /// Frees `uid`'s slot and lets the head of its region's line in.
    pub async fn offline(&self, uid: u64) -> StoreResult<Option<Freed>> {
        match self {
            QueueStore::Memory(state) => {
                let mut state = state.lock().unwrap();
                let Some(region) = state.region_of.remove(&uid) else { return Ok(None) };
                state.admitted.entry(region.clone()).or_default().remove(&uid);
                let next = state.lines.entry(region.clone()).or_default().pop_front();
                if let Some((_, next_uid)) = next {
                    state.admitted.entry(region.clone()).or_default().insert(next_uid);
                    state.region_of.insert(next_uid, region.clone());
                }
                let line = state.lines.get(&region).map(|l| l.iter().map(|(s, _)| *s).collect()).unwrap_or_default();
                Ok(Some(Freed { region, admitted: next.map(|(s, _)| s), line }))
            }
            QueueStore::Redis { conn, prefix } => {
                let reply: Option<Vec<String>> = redis::Script::new(OFFLINE)
                    .key(Self::key(prefix, "region_of"))
                    .key(Self::key(prefix, "waiting_of"))
                    .arg(uid)
                    .arg(prefix)
                    .invoke_async(&mut conn.clone())
                    .await?;
                let Some(reply) = reply else { return Ok(None) };
                let (region, next) = (reply[0].clone(), &reply[1]);
                let admitted = sessions(std::slice::from_ref(next)).pop();
                Ok(Some(Freed { region, admitted, line: sessions(&reply[2..]) }))
            }
        }
    }
}
