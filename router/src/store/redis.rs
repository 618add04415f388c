use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use redis::AsyncCommands;

use super::StoreLook;

use super::StoreResult;
use protocol::SessionId;

/// How long a gateway's session list outlives the last router that
/// renewed its lease: a gateway gone for good (its lease reaped, or no
/// router left to reap it) leaves nothing behind for longer.
const GATEWAY_STATE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Membership in Redis. Keys, under a prefix:
/// `ch:<channel>` the set of member session ids,
/// `sc:<session>` the set of that session's channels (to clean up on close),
/// `channels` the set of non-empty channel names, `u:<user>` the set of a user's sessions, `su:<session>` its user,
/// `gateways` the gateways known, `gw:<gateway>:sessions` each one's
/// sessions (expiring an hour after its last renewal), `gw:<gateway>:lease`
/// its lease, `gw:<gateway>:reaper` the router reaping it; `epoch`, set
/// once, and `fence`, counting every write the gateways' resync restores
/// (see [`RedisStore::look`]); and presence and history (see those modules).
pub struct RedisStore {
    conn: runtime::Redis,
    prefix: String,
    /// The connection's failovers already answered with a resync.
    failovers_seen: AtomicU64,
    /// The highest `fence` a write of this router got.
    fence_seen: AtomicU64,
}

impl RedisStore {
    pub fn new(conn: runtime::Redis, prefix: impl Into<String>) -> RedisStore {
        RedisStore { conn, prefix: prefix.into(), failovers_seen: Default::default(), fence_seen: Default::default() }
    }

    /// Runs `pipe` with the fence's INCR last, and its other answers as `T`:
    /// the fence counts the writes a resync restores, in the order they were
    /// taken, so a store that lost some it confirmed counts fewer.
    pub(super) async fn query_fenced<T: redis::FromRedisValue>(&self, mut pipe: redis::Pipeline) -> StoreResult<T> {
        pipe.incr(self.key("fence"), 1);
        let mut answers: Vec<redis::Value> = pipe.query_async(&mut self.conn.clone()).await?;
        let fence: u64 = redis::from_redis_value(answers.pop().unwrap_or(redis::Value::Nil))?;
        self.fence_seen.fetch_max(fence, Relaxed);
        Ok(redis::from_redis_value(redis::Value::Array(answers))?)
    }

    /// A key under this store's prefix.
    pub(super) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub(super) fn connection(&self) -> runtime::Redis {
        self.conn.clone()
    }

    fn channel_key(&self, channel: &str) -> String {
        format!("{}ch:{channel}", self.prefix)
    }

    fn session_key(&self, id: &SessionId) -> String {
        format!("{}sc:{id}", self.prefix)
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}u:{user}", self.prefix)
    }

    fn session_user_key(&self, id: &SessionId) -> String {
        format!("{}su:{id}", self.prefix)
    }

    fn channels_key(&self) -> String {
        format!("{}channels", self.prefix)
    }

    pub async fn join(&self, channel: &str, ids: &[SessionId]) -> StoreResult<Vec<SessionId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for id in ids {
            pipe.sadd(self.channel_key(channel), id.as_str());
        }
        for id in ids {
            pipe.sadd(self.session_key(id), channel).ignore();
        }
        pipe.sadd(self.channels_key(), channel).ignore();
        let added: Vec<usize> = self.query_fenced(pipe).await?;
        Ok(ids.iter().zip(added).filter(|(_, n)| *n == 1).map(|(id, _)| *id).collect())
    }

    pub async fn leave(&self, channel: &str, ids: &[SessionId]) -> StoreResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.atomic().srem(self.channel_key(channel), ids_as_strs(ids));
        for id in ids {
            pipe.srem(self.session_key(id), channel).ignore();
        }
        let (removed,): (usize,) = pipe.query_async(&mut self.conn.clone()).await?;
        self.drop_if_empty(&[channel.to_owned()]).await?;
        Ok(removed)
    }

    pub async fn members(&self, channel: &str) -> StoreResult<Vec<SessionId>> {
        let raw: Vec<Vec<u8>> = self.conn.clone().smembers(self.channel_key(channel)).await?;
        Ok(raw.iter().filter_map(|id| SessionId::parse(id).ok()).collect())
    }

    pub async fn forget(&self, ids: &[SessionId], per_session: &[Vec<String>]) -> StoreResult<()> {
        self.unbind(ids).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut touched = HashSet::new();
        for (id, channels) in ids.iter().zip(per_session) {
            for channel in channels {
                pipe.srem(self.channel_key(channel), id.as_str()).ignore();
                touched.insert(channel.clone());
            }
            pipe.del(self.session_key(id)).ignore();
        }
        let () = pipe.query_async(&mut self.conn.clone()).await?;
        self.drop_if_empty(&touched.into_iter().collect::<Vec<_>>()).await
    }

    pub async fn channel_count(&self) -> StoreResult<usize> {
        Ok(self.conn.clone().scard(self.channels_key()).await?)
    }

    pub async fn channels_of(&self, ids: &[SessionId]) -> StoreResult<usize> {
        let per_session = self.sessions_channels(ids).await?;
        Ok(per_session.into_iter().flatten().collect::<HashSet<_>>().len())
    }

    fn gateway_key(&self, gateway: &str, part: &str) -> String {
        format!("{}gw:{gateway}:{part}", self.prefix)
    }

    pub async fn gateway_sessions(&self, gateway: &str, ids: &[SessionId], connected: bool) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = self.gateway_key(gateway, "sessions");
        let mut conn = self.conn.clone();
        if connected {
            let () = redis::pipe()
                .sadd(&key, ids_as_strs(ids))
                .ignore()
                .pexpire(&key, GATEWAY_STATE_TTL.as_millis() as i64)
                .ignore()
                .sadd(self.gateways_key(), gateway)
                .ignore()
                .query_async(&mut conn)
                .await?;
        } else {
            let () = conn.srem(&key, ids_as_strs(ids)).await?;
        }
        Ok(())
    }

    pub async fn renew_leases(&self, gateways: &[String], lease: std::time::Duration) -> StoreResult<()> {
        if gateways.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for gateway in gateways {
            pipe.cmd("SET")
                .arg(self.gateway_key(gateway, "lease"))
                .arg(1)
                .arg("PX")
                .arg(lease.as_millis() as u64)
                .ignore();
            pipe.pexpire(self.gateway_key(gateway, "sessions"), GATEWAY_STATE_TTL.as_millis() as i64).ignore();
            pipe.sadd(self.gateways_key(), gateway).ignore();
        }
        let () = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    pub async fn reap_dead_gateway(&self) -> StoreResult<Option<(String, Vec<SessionId>)>> {
        let mut conn = self.conn.clone();
        let known: Vec<String> = conn.smembers(self.gateways_key()).await?;
        for gateway in known {
            let alive: bool = conn.exists(self.gateway_key(&gateway, "lease")).await?;
            if alive {
                continue;
            }
            // One router reaps a gateway; the claim outlives a slow reaper.
            let claim: Option<String> = redis::cmd("SET")
                .arg(self.gateway_key(&gateway, "reaper"))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(60_000)
                .query_async(&mut conn)
                .await?;
            if claim.is_none() {
                continue;
            }
            let sessions_key = self.gateway_key(&gateway, "sessions");
            let (raw, (), ()): (Vec<Vec<u8>>, (), ()) = redis::pipe()
                .atomic()
                .smembers(&sessions_key)
                .del(&sessions_key)
                .srem(self.gateways_key(), &gateway)
                .query_async(&mut conn)
                .await?;
            let ids = raw.iter().filter_map(|id| SessionId::parse(id).ok()).collect();
            return Ok(Some((gateway, ids)));
        }
        Ok(None)
    }

    fn gateways_key(&self) -> String {
        format!("{}gateways", self.prefix)
    }

    /// What the store kept of what it was told, since the last look:
    /// - `empty`: the epoch key the routers set once is missing: Redis is
    ///   new, or restarted without its data, or was flushed (set again; only
    ///   the router that does says so);
    /// - `rolled_back`: the fence counts fewer writes than this router saw
    ///   it count: writes it confirmed are gone, whatever moved the store (a
    ///   Cluster's or Sentinels' replica promoted without them, a restart,
    ///   an old snapshot);
    /// - `failed_over`: the connection followed the Sentinels to a new master.
    pub async fn look(&self) -> StoreResult<StoreLook> {
        let seen = self.fence_seen.load(Relaxed);
        let (set, fence): (Option<String>, Option<u64>) = redis::pipe()
            .cmd("SET")
            .arg(self.key("epoch"))
            .arg(1)
            .arg("NX")
            .get(self.key("fence"))
            .query_async(&mut self.conn.clone())
            .await?;
        let fence = fence.unwrap_or(0);
        let rolled_back = fence < seen;
        if rolled_back {
            let _ = self.fence_seen.compare_exchange(seen, fence, Relaxed, Relaxed);
        }
        let failovers = self.conn.failovers();
        let failed_over = self.failovers_seen.swap(failovers, Relaxed) != failovers;
        Ok(StoreLook { empty: set.is_some(), rolled_back, failed_over })
    }

    pub async fn count(&self, channel: &str) -> StoreResult<usize> {
        Ok(self.conn.clone().scard(self.channel_key(channel)).await?)
    }

    pub async fn session_channels(&self, id: &SessionId) -> StoreResult<Vec<String>> {
        let mut channels: Vec<String> = self.conn.clone().smembers(self.session_key(id)).await?;
        channels.sort();
        Ok(channels)
    }

    pub async fn bind_user(&self, id: &SessionId, user: &str) -> StoreResult<()> {
        self.unbind(std::slice::from_ref(id)).await?;
        let mut pipe = redis::pipe();
        pipe.atomic().sadd(self.user_key(user), id.as_str()).ignore().set(self.session_user_key(id), user).ignore();
        self.query_fenced(pipe).await
    }

    pub async fn session_users(&self, ids: &[SessionId]) -> StoreResult<Vec<Option<String>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.session_user_key(id)).collect();
        Ok(redis::cmd("MGET").arg(&keys).query_async(&mut self.conn.clone()).await?)
    }

    /// Notes this router as alive now (its report, JSON with `"seen"`),
    /// and returns every router's, dropping those unseen for an hour.
    pub async fn routers(&self, name: &str, report: &str) -> StoreResult<Vec<(String, String)>> {
        let key = self.key("routers");
        let mut conn = self.conn.clone();
        let unix_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (_, reports): ((), Vec<(String, String)>) =
            redis::pipe().hset(&key, name, report).hgetall(&key).query_async(&mut conn).await?;
        let gone: Vec<&String> = reports
            .iter()
            .filter(|(_, report)| {
                let seen = serde_json::from_str::<serde_json::Value>(report).ok().and_then(|r| r["seen"].as_u64());
                seen.is_none_or(|seen| unix_now.saturating_sub(seen) > 3600)
            })
            .map(|(name, _)| name)
            .collect();
        if !gone.is_empty() {
            let () = conn.hdel(&key, gone).await?;
        }
        Ok(reports)
    }

    pub async fn user_sessions(&self, user: &str) -> StoreResult<Vec<SessionId>> {
        let raw: Vec<Vec<u8>> = self.conn.clone().smembers(self.user_key(user)).await?;
        Ok(raw.iter().filter_map(|id| SessionId::parse(id).ok()).collect())
    }

    /// Ends the sessions' user bindings.
    async fn unbind(&self, ids: &[SessionId]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.session_user_key(id)).collect();
        let users: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut self.conn.clone()).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for ((id, key), user) in ids.iter().zip(&keys).zip(users) {
            if let Some(user) = user {
                pipe.srem(self.user_key(&user), id.as_str()).ignore();
            }
            pipe.del(key).ignore();
        }
        let () = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    pub async fn sessions_channels(&self, ids: &[SessionId]) -> StoreResult<Vec<Vec<String>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.smembers(self.session_key(id));
        }
        Ok(pipe.query_async(&mut self.conn.clone()).await?)
    }

    /// Removes emptied channels from the channel index.
    async fn drop_if_empty(&self, channels: &[String]) -> StoreResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for channel in channels {
            pipe.scard(self.channel_key(channel));
        }
        let sizes: Vec<usize> = pipe.query_async(&mut self.conn.clone()).await?;
        let empty: Vec<&String> = channels.iter().zip(sizes).filter(|(_, n)| *n == 0).map(|(c, _)| c).collect();
        if !empty.is_empty() {
            let () = self.conn.clone().srem(self.channels_key(), empty).await?;
        }
        Ok(())
    }
}

fn ids_as_strs(ids: &[SessionId]) -> Vec<&str> {
    ids.iter().map(SessionId::as_str).collect()
}
