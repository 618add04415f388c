use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use redis::AsyncCommands;

use super::shards::Shards;
use super::{StoreLook, StoreResult};
use protocol::SessionId;

/// How long a gateway's session list outlives the last router that
/// renewed its lease: a gateway gone for good (its lease reaped, or no
/// router left to reap it) leaves nothing behind for longer.
const GATEWAY_STATE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Membership in Redis. Keys, under a prefix, in the shard of what they
/// belong to (see [`Shards`]): a channel's `ch:<channel>` (the set of its
/// member session ids), presence and history (see those modules); a
/// session's `sc:<session>` (the set of its channels, to clean up on
/// close) and `su:<session>` (its user); a user's `u:<user>` (the set of
/// its sessions); a gateway's `gw:<gateway>:sessions` (expiring an hour
/// after its last renewal), `gw:<gateway>:lease` and `gw:<gateway>:reaper`
/// (the router reaping it). Each shard has its own `channels` (the set of
/// its non-empty channels), `epoch`, set once, and `fence`, counting
/// every write the gateways' resync restores (see [`RedisStore::look`]).
/// Shard 0 has `gateways`, the gateways known, and `routers`.
///
/// A write that spans shards goes in an order that leaves nothing behind
/// if it stops halfway: a join adds the channel to each session's list
/// before the session to the channel, a leave the other way round, so
/// that a session's list always holds every channel it is in.
pub struct RedisStore {
    conn: runtime::Redis,
    shards: Shards,
    /// The connection's failovers already answered with a resync.
    failovers_seen: AtomicU64,
    /// Per shard, the highest `fence` a write of this router got.
    fences_seen: Vec<AtomicU64>,
}

/// Commands by shard, sent as one pipeline per shard, all at once.
#[derive(Default)]
pub(super) struct Batch {
    pipes: BTreeMap<usize, redis::Pipeline>,
}

impl Batch {
    pub(super) fn pipe(&mut self, shard: usize) -> &mut redis::Pipeline {
        self.pipes.entry(shard).or_insert_with(redis::pipe)
    }

    /// `shard`'s pipeline, or `here` when `shard` is `here_shard`: what
    /// shares a shard with `here` goes with it.
    pub(super) fn pipe_or<'a>(
        &'a mut self,
        here: &'a mut redis::Pipeline,
        here_shard: usize,
        shard: usize,
    ) -> &'a mut redis::Pipeline {
        match shard == here_shard {
            true => here,
            false => self.pipe(shard),
        }
    }

    /// Sends every shard's commands, their answers ignored; `fenced`, each
    /// with its shard's fence.
    pub(super) async fn run(self, store: &RedisStore, fenced: bool) -> StoreResult<()> {
        let sends = self.pipes.into_iter().map(|(shard, pipe)| async move {
            match fenced {
                true => store.query_fenced::<()>(shard, pipe).await,
                false => Ok(pipe.query_async::<()>(&mut store.connection()).await?),
            }
        });
        futures_util::future::try_join_all(sends).await?;
        Ok(())
    }
}

impl RedisStore {
    /// On a Redis Cluster, keys spread over [`shards::CLUSTER_SHARDS`]
    /// shards; on one Redis they keep the plain prefix.
    pub fn new(conn: runtime::Redis, prefix: &str) -> RedisStore {
        let shards = match conn.is_cluster() {
            true => Shards::cluster(prefix),
            false => Shards::single(prefix),
        };
        let fences_seen = (0..shards.count()).map(|_| AtomicU64::default()).collect();
        RedisStore { conn, shards, failovers_seen: Default::default(), fences_seen }
    }

    pub(super) fn shards(&self) -> &Shards {
        &self.shards
    }

    /// Runs `pipe`, whose keys are all in `shard`, with the shard's fence
    /// INCR last, and its other answers as `T`: the fence counts the
    /// writes a resync restores, in the order they were taken (one
    /// connection to the shard's master, which replicates in order), so a
    /// shard that lost some it confirmed counts fewer. Not a transaction
    /// unless `pipe` is one: a write that needs its answers consistent
    /// (a presence join's count) makes it one.
    pub(super) async fn query_fenced<T: redis::FromRedisValue>(
        &self,
        shard: usize,
        mut pipe: redis::Pipeline,
    ) -> StoreResult<T> {
        pipe.incr(self.shards.key(shard, "fence"), 1);
        let mut answers: Vec<redis::Value> = pipe.query_async(&mut self.conn.clone()).await?;
        let fence: u64 = redis::from_redis_value(answers.pop().unwrap_or(redis::Value::Nil))?;
        self.fences_seen[shard].fetch_max(fence, Relaxed);
        Ok(redis::from_redis_value(redis::Value::Array(answers))?)
    }

    /// One command or more per item, each item's in the shard `shard_of`
    /// gives it, one pipeline per shard (a transaction if `add` makes it
    /// one), all at once: each item's `answers` answers (its other
    /// commands ignored), in the items' order, as `T`.
    pub(super) async fn per_shard<T: redis::FromRedisValue>(
        &self,
        count: usize,
        shard_of: impl Fn(usize) -> usize,
        answers: usize,
        add: impl Fn(&mut redis::Pipeline, usize),
    ) -> StoreResult<T> {
        let mut by_shard: BTreeMap<usize, (redis::Pipeline, Vec<usize>)> = BTreeMap::new();
        for item in 0..count {
            let (pipe, items) = by_shard.entry(shard_of(item)).or_insert_with(|| (redis::pipe(), Vec::new()));
            add(pipe, item);
            items.push(item);
        }
        let sends = by_shard.into_values().map(|(pipe, items)| async move {
            let got: Vec<redis::Value> = pipe.query_async(&mut self.connection()).await?;
            StoreResult::Ok((items, got))
        });
        let mut ordered = vec![redis::Value::Nil; count * answers];
        for (items, got) in futures_util::future::try_join_all(sends).await? {
            for (item, value) in items.iter().flat_map(|item| (0..answers).map(move |n| item * answers + n)).zip(got) {
                ordered[item] = value;
            }
        }
        Ok(redis::from_redis_value(redis::Value::Array(ordered))?)
    }

    /// A key in `shard`.
    pub(super) fn key(&self, shard: usize, name: &str) -> String {
        self.shards.key(shard, name)
    }

    pub(super) fn connection(&self) -> runtime::Redis {
        self.conn.clone()
    }

    /// A key of `channel`'s, `KIND:CHANNEL` in the channel's shard.
    pub(super) fn channel_scoped(&self, kind: &str, channel: &str) -> String {
        self.key(self.shards.of(channel), &format!("{kind}:{channel}"))
    }

    fn shard_of_session(&self, id: &SessionId) -> usize {
        self.shards.of(id.as_str())
    }

    fn channel_key(&self, channel: &str) -> String {
        self.channel_scoped("ch", channel)
    }

    fn session_key(&self, id: &SessionId) -> String {
        self.key(self.shard_of_session(id), &format!("sc:{id}"))
    }

    fn user_key(&self, user: &str) -> String {
        self.key(self.shards.of(user), &format!("u:{user}"))
    }

    fn session_user_key(&self, id: &SessionId) -> String {
        self.key(self.shard_of_session(id), &format!("su:{id}"))
    }

    fn channels_key(&self, channel: &str) -> String {
        self.key(self.shards.of(channel), "channels")
    }

    pub async fn join(&self, channel: &str, ids: &[SessionId]) -> StoreResult<Vec<SessionId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // The channel goes to each session's list first (in the channel's
        // own pipeline where they share a shard).
        let shard = self.shards.of(channel);
        let mut members = redis::pipe();
        for id in ids {
            members.sadd(self.channel_key(channel), id.as_str());
        }
        members.sadd(self.channels_key(channel), channel).ignore();
        let mut sessions = Batch::default();
        for id in ids {
            sessions
                .pipe_or(&mut members, shard, self.shard_of_session(id))
                .sadd(self.session_key(id), channel)
                .ignore();
        }
        sessions.run(self, true).await?;
        let added: Vec<usize> = self.query_fenced(shard, members).await?;
        Ok(ids.iter().zip(added).filter(|(_, n)| *n == 1).map(|(id, _)| *id).collect())
    }

    pub async fn leave(&self, channel: &str, ids: &[SessionId]) -> StoreResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        // Out of the channel first, then out of each session's list.
        let shard = self.shards.of(channel);
        let mut members = redis::pipe();
        members.srem(self.channel_key(channel), ids_as_strs(ids));
        let mut sessions = Batch::default();
        for id in ids {
            sessions
                .pipe_or(&mut members, shard, self.shard_of_session(id))
                .srem(self.session_key(id), channel)
                .ignore();
        }
        let (removed,): (usize,) = members.query_async(&mut self.conn.clone()).await?;
        sessions.run(self, false).await?;
        self.drop_if_empty(&[channel.to_owned()]).await?;
        Ok(removed)
    }

    pub async fn members(&self, channel: &str) -> StoreResult<Vec<SessionId>> {
        let raw: Vec<Vec<u8>> = self.conn.clone().smembers(self.channel_key(channel)).await?;
        Ok(raw.iter().filter_map(|id| SessionId::parse(id).ok()).collect())
    }

    pub async fn forget(&self, ids: &[SessionId], per_session: &[Vec<String>]) -> StoreResult<()> {
        self.unbind(ids).await?;
        let mut members = Batch::default();
        let mut touched = HashSet::new();
        for (id, channels) in ids.iter().zip(per_session) {
            for channel in channels {
                members.pipe(self.shards.of(channel)).srem(self.channel_key(channel), id.as_str()).ignore();
                touched.insert(channel.clone());
            }
        }
        members.run(self, false).await?;
        let mut sessions = Batch::default();
        for id in ids {
            sessions.pipe(self.shard_of_session(id)).del(self.session_key(id)).ignore();
        }
        sessions.run(self, false).await?;
        self.drop_if_empty(&touched.into_iter().collect::<Vec<_>>()).await
    }

    pub async fn channel_count(&self) -> StoreResult<usize> {
        let counts = self.per_shard::<Vec<usize>>(
            self.shards.count(),
            |shard| shard,
            1,
            |pipe, shard| {
                pipe.scard(self.key(shard, "channels"));
            },
        );
        Ok(counts.await?.into_iter().sum::<usize>())
    }

    pub async fn channels_of(&self, ids: &[SessionId]) -> StoreResult<usize> {
        let per_session = self.sessions_channels(ids).await?;
        Ok(per_session.into_iter().flatten().collect::<HashSet<_>>().len())
    }

    /// A gateway's key, in the gateway's shard.
    fn gateway_key(&self, gateway: &str, part: &str) -> String {
        self.key(self.shards.of(gateway), &format!("gw:{gateway}:{part}"))
    }

    fn gateways_key(&self) -> String {
        self.key(0, "gateways")
    }

    /// Notes the gateway as known too, so that it is reaped should it die
    /// before a router renews its lease.
    pub async fn gateway_sessions(&self, gateway: &str, ids: &[SessionId], connected: bool) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = self.gateway_key(gateway, "sessions");
        let mut batch = Batch::default();
        let sessions = batch.pipe(self.shards.of(gateway));
        match connected {
            true => sessions.sadd(&key, ids_as_strs(ids)).ignore().pexpire(&key, GATEWAY_STATE_TTL.as_millis() as i64),
            false => sessions.srem(&key, ids_as_strs(ids)),
        }
        .ignore();
        if connected {
            batch.pipe(0).sadd(self.gateways_key(), gateway).ignore();
        }
        batch.run(self, false).await
    }

    /// Renews the leases, and notes the gateways as known.
    pub async fn renew_leases(&self, gateways: &[String], lease: std::time::Duration) -> StoreResult<()> {
        if gateways.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        for gateway in gateways {
            let pipe = batch.pipe(self.shards.of(gateway));
            pipe.cmd("SET").arg(self.gateway_key(gateway, "lease")).arg(1).arg("PX").arg(lease.as_millis() as u64);
            pipe.ignore();
            pipe.pexpire(self.gateway_key(gateway, "sessions"), GATEWAY_STATE_TTL.as_millis() as i64).ignore();
        }
        batch.pipe(0).sadd(self.gateways_key(), gateways).ignore();
        batch.run(self, false).await
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
            let (raw, ()): (Vec<Vec<u8>>, ()) =
                redis::pipe().atomic().smembers(&sessions_key).del(&sessions_key).query_async(&mut conn).await?;
            let () = conn.srem(self.gateways_key(), &gateway).await?;
            let ids = raw.iter().filter_map(|id| SessionId::parse(id).ok()).collect();
            return Ok(Some((gateway, ids)));
        }
        Ok(None)
    }

    /// What the store kept of what it was told, since the last look, in
    /// each shard:
    /// - `empty`: the epoch key the routers set once is missing: Redis (or
    ///   a Cluster's master) is new, or restarted without its data, or was
    ///   flushed (set again; only the router that does says so);
    /// - `rolled_back`: the fence counts fewer writes than this router saw
    ///   it count: writes it confirmed are gone, whatever moved the store (a
    ///   Cluster's or Sentinels' replica promoted without them, a restart,
    ///   an old snapshot);
    /// - `failed_over`: the connection followed the Sentinels to a new master.
    pub async fn look(&self) -> StoreResult<StoreLook> {
        let looks = self.per_shard(
            self.shards.count(),
            |shard| shard,
            2,
            |pipe, shard| {
                pipe.cmd("SET").arg(self.key(shard, "epoch")).arg(1).arg("NX").get(self.key(shard, "fence"));
            },
        );
        let looks: Vec<(Option<String>, Option<u64>)> = looks.await?;
        let mut look = StoreLook::default();
        for ((set, fence), seen) in looks.into_iter().zip(&self.fences_seen) {
            look.empty |= set.is_some();
            let (fence, was) = (fence.unwrap_or(0), seen.load(Relaxed));
            if fence < was {
                look.rolled_back = true;
                let _ = seen.compare_exchange(was, fence, Relaxed, Relaxed);
            }
        }
        let failovers = self.conn.failovers();
        look.failed_over = self.failovers_seen.swap(failovers, Relaxed) != failovers;
        Ok(look)
    }
    pub async fn count(&self, channel: &str) -> StoreResult<usize> {
        Ok(self.conn.clone().scard(self.channel_key(channel)).await?)
    }

    pub async fn session_channels(&self, id: &SessionId) -> StoreResult<Vec<String>> {
        let mut channels: Vec<String> = self.conn.clone().smembers(self.session_key(id)).await?;
        channels.sort();
        Ok(channels)
    }

    /// The session's own key goes first: an unbind finds the user there.
    pub async fn bind_user(&self, id: &SessionId, user: &str) -> StoreResult<()> {
        self.unbind(std::slice::from_ref(id)).await?;
        let shard = self.shards.of(user);
        let mut users = redis::pipe();
        users.sadd(self.user_key(user), id.as_str()).ignore();
        let mut sessions = Batch::default();
        sessions.pipe_or(&mut users, shard, self.shard_of_session(id)).set(self.session_user_key(id), user).ignore();
        sessions.run(self, true).await?;
        self.query_fenced(shard, users).await
    }

    pub async fn session_users(&self, ids: &[SessionId]) -> StoreResult<Vec<Option<String>>> {
        let users = self.per_shard(
            ids.len(),
            |n| self.shard_of_session(&ids[n]),
            1,
            |pipe, n| {
                pipe.get(self.session_user_key(&ids[n]));
            },
        );
        users.await
    }

    /// Notes this router as alive now (its report, JSON with `"seen"`),
    /// and returns every router's, dropping those unseen for an hour.
    pub async fn routers(&self, name: &str, report: &str) -> StoreResult<Vec<(String, String)>> {
        let key = self.key(0, "routers");
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

    /// Ends the sessions' user bindings: out of each user's set, then the
    /// session's own key.
    async fn unbind(&self, ids: &[SessionId]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let users = self.session_users(ids).await?;
        let mut sets = Batch::default();
        for (id, user) in ids.iter().zip(&users) {
            if let Some(user) = user {
                sets.pipe(self.shards.of(user)).srem(self.user_key(user), id.as_str()).ignore();
            }
        }
        sets.run(self, false).await?;
        let mut own = Batch::default();
        for (id, _) in ids.iter().zip(&users).filter(|(_, user)| user.is_some()) {
            own.pipe(self.shard_of_session(id)).del(self.session_user_key(id)).ignore();
        }
        own.run(self, false).await
    }

    pub async fn sessions_channels(&self, ids: &[SessionId]) -> StoreResult<Vec<Vec<String>>> {
        let channels = self.per_shard(
            ids.len(),
            |n| self.shard_of_session(&ids[n]),
            1,
            |pipe, n| {
                pipe.smembers(self.session_key(&ids[n]));
            },
        );
        channels.await
    }

    /// Removes emptied channels from their shard's channel index.
    async fn drop_if_empty(&self, channels: &[String]) -> StoreResult<()> {
        let sizes = self.per_shard(
            channels.len(),
            |n| self.shards.of(&channels[n]),
            1,
            |pipe, n| {
                pipe.scard(self.channel_key(&channels[n]));
            },
        );
        let sizes: Vec<usize> = sizes.await?;
        let mut index = Batch::default();
        for (channel, _) in channels.iter().zip(sizes).filter(|(_, n)| *n == 0) {
            index.pipe(self.shards.of(channel)).srem(self.channels_key(channel), channel).ignore();
        }
        index.run(self, false).await
    }
}

fn ids_as_strs(ids: &[SessionId]) -> Vec<&str> {
    ids.iter().map(SessionId::as_str).collect()
}
