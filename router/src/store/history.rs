//! History: the last messages of the channels `--history` names, kept so
//! that a late joiner gets them before live ones, and a backend can read
//! them. Bounded per channel in count and bytes, and dropped a
//! time-to-live after the channel's last publish; all channels together
//! within `--history-total-bytes`, the channels published to longest ago
//! dropped first. In memory, or in Redis as a stream per channel,
//! `h:<channel>`, with its bytes in `hb:<channel>`, trimmed by one script
//! so that no bound is passed; the total in `ht` (bytes per channel),
//! `htz` (channels by expiry) and `htb` (the sum).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use protocol::cmd::Payload;
use tokio::time::Instant;

use super::redis::RedisStore;
use super::StoreResult;

/// What a channel keeps: set by the longest `--history` prefix its name has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub count: usize,
    pub ttl: Duration,
    pub max_bytes: usize,
    /// What all kept channels hold at most together (`--history-total-bytes`).
    pub total_bytes: usize,
    /// Its messages go to clients in an envelope with their offset
    /// (`--history-envelope`), so a client can recover from one.
    pub envelope: bool,
}

/// What a kept message costs toward `--history-total-bytes` beyond its
/// payload: a tiny message is no free ride.
pub const ENTRY_COST: usize = 64;

fn cost(payload: &Payload) -> usize {
    payload.data.len() + ENTRY_COST
}

/// `--history PREFIX=COUNT[/TTL_SECS]` rules, with `--history-max-bytes`
/// and the `--history-envelope` prefixes.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    rules: Vec<(String, Rule)>,
    envelopes: Vec<String>,
}

/// How long history is kept after a channel's last publish, unless a rule says.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

impl Rules {
    /// Whether any channel keeps history.
    pub fn any(&self) -> bool {
        !self.rules.is_empty()
    }

    pub fn parse(
        specs: &[String],
        max_bytes: usize,
        total_bytes: usize,
        envelopes: &[String],
    ) -> anyhow::Result<Rules> {
        if total_bytes < max_bytes + ENTRY_COST {
            anyhow::bail!(
                "--history-total-bytes {total_bytes} cannot hold one channel's --history-max-bytes {max_bytes}"
            );
        }
        let mut rules = Vec::new();
        for spec in specs {
            let bad = || anyhow::anyhow!("--history {spec:?}: expected PREFIX=COUNT or PREFIX=COUNT/TTL_SECS");
            let (prefix, rest) = spec.rsplit_once('=').ok_or_else(bad)?;
            let (count, ttl) = match rest.split_once('/') {
                Some((count, ttl)) => (count, Duration::from_secs(ttl.parse().map_err(|_| bad())?)),
                None => (rest, DEFAULT_TTL),
            };
            let count: usize = count.parse().map_err(|_| bad())?;
            if count == 0 || ttl.is_zero() {
                anyhow::bail!("--history {spec:?}: a count and a time-to-live above zero");
            }
            rules.push((prefix.to_owned(), Rule { count, ttl, max_bytes, total_bytes, envelope: false }));
        }
        Ok(Rules { rules, envelopes: envelopes.to_vec() })
    }

    /// The rule of the longest prefix `channel` has, if any.
    pub fn of(&self, channel: &str) -> Option<Rule> {
        let matching = self.rules.iter().filter(|(prefix, _)| channel.starts_with(prefix.as_str()));
        let rule = matching.max_by_key(|(prefix, _)| prefix.len()).map(|(_, rule)| *rule)?;
        let envelope = self.envelopes.iter().any(|prefix| channel.starts_with(prefix.as_str()));
        Some(Rule { envelope, ..rule })
    }
}

/// A kept message: its offset in the channel, and its payload.
pub type Kept = (String, Payload);

/// The messages kept after an offset, and whether that offset is still
/// kept itself: if so, they are all that came after it.
#[derive(Debug, PartialEq, Eq)]
pub struct Since {
    pub entries: Vec<Kept>,
    pub recovered: bool,
}

/// What an append did: the offset it got, how many older messages it
/// pushed out, and how many other channels were dropped for the total.
#[derive(Debug, PartialEq, Eq)]
pub struct Appended {
    pub offset: String,
    pub trimmed: usize,
    pub evicted: usize,
}

#[derive(Default)]
pub struct MemoryHistory {
    kept: Mutex<Channels>,
    /// Offsets are drawn from one count for all channels, so a channel
    /// dropped and kept again never gives an offset twice.
    last_offset: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Channels {
    by_name: HashMap<String, Channel>,
    /// Channel names by their last append's offset: the oldest go first.
    by_age: BTreeMap<u64, String>,
    /// What every channel costs together (see [`ENTRY_COST`]).
    cost: usize,
}

struct Channel {
    entries: VecDeque<(u64, Payload)>,
    bytes: usize,
    cost: usize,
    expires: Instant,
    /// Its key in [`Channels::by_age`].
    last: u64,
}

impl Channels {
    fn drop_channel(&mut self, name: &str) -> Option<Channel> {
        let gone = self.by_name.remove(name)?;
        self.by_age.remove(&gone.last);
        self.cost -= gone.cost;
        Some(gone)
    }
}

impl MemoryHistory {
    pub fn append(&self, channel: &str, payload: &Payload, rule: Rule) -> Appended {
        let now = Instant::now();
        let mut all = self.kept.lock().unwrap();
        if all.by_name.get(channel).is_some_and(|kept| kept.expires <= now) {
            all.drop_channel(channel);
        }
        let offset = self.last_offset.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let Channels { by_name, by_age, cost: total } = &mut *all;
        let kept = by_name.entry(channel.to_owned()).or_insert_with(|| Channel {
            entries: VecDeque::new(),
            bytes: 0,
            cost: 0,
            expires: now,
            last: 0,
        });
        by_age.remove(&kept.last);
        by_age.insert(offset, channel.to_owned());
        kept.last = offset;
        kept.bytes += payload.data.len();
        kept.cost += cost(payload);
        *total += cost(payload);
        kept.entries.push_back((offset, payload.clone()));
        let mut trimmed = 0;
        while kept.entries.len() > rule.count || (kept.bytes > rule.max_bytes && kept.entries.len() > 1) {
            let (_, old) = kept.entries.pop_front().expect("more than one entry");
            kept.bytes -= old.data.len();
            kept.cost -= cost(&old);
            *total -= cost(&old);
            trimmed += 1;
        }
        kept.expires = now + rule.ttl;
        let mut evicted = 0;
        while all.cost > rule.total_bytes {
            let oldest = all.by_age.values().find(|name| *name != channel).cloned();
            let Some(oldest) = oldest else { break };
            all.drop_channel(&oldest);
            evicted += 1;
        }
        Appended { offset: offset.to_string(), trimmed, evicted }
    }

    pub fn read(&self, channel: &str, limit: usize) -> Vec<Kept> {
        let channels = &self.kept.lock().unwrap().by_name;
        let Some(kept) = channels.get(channel).filter(|kept| kept.expires > Instant::now()) else {
            return Vec::new();
        };
        let skip = kept.entries.len().saturating_sub(limit);
        kept.entries.iter().skip(skip).map(|(offset, payload)| (offset.to_string(), payload.clone())).collect()
    }

    pub fn since(&self, channel: &str, since: &str, limit: usize) -> Since {
        let kept = self.read(channel, usize::MAX);
        let recovered = kept.iter().any(|(offset, _)| offset == since);
        let after: Vec<Kept> = match since.parse::<u64>() {
            Ok(since) => {
                kept.into_iter().filter(|(offset, _)| offset.parse::<u64>().is_ok_and(|o| o > since)).collect()
            }
            Err(_) => kept,
        };
        let skip = after.len().saturating_sub(limit);
        Since { entries: after.into_iter().skip(skip).collect(), recovered }
    }

    /// Drops the channels whose time ran out; what all kept channels
    /// cost now (toward `--history-total-bytes`).
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut all = self.kept.lock().unwrap();
        let expired: Vec<String> =
            all.by_name.iter().filter(|(_, kept)| kept.expires <= now).map(|(name, _)| name.clone()).collect();
        for name in expired {
            all.drop_channel(&name);
        }
        all.cost
    }
}

/// Appends one message and trims the oldest past the count or the bytes
/// (never the one just added), sets both keys' time to live, and keeps
/// the total within its budget, dropping the channels that expire first
/// (never this one). A channel whose keys expired starts afresh.
/// KEYS: the stream, its byte count, `ht`, `htz`, `htb`. ARGV: data,
/// binary flag, count, bytes, ttl in ms, channel, total budget, now in
/// ms, the key prefix, [`ENTRY_COST`]. Returns the new entry's id, how
/// many went, and how many channels were dropped.
const APPEND: &str = r"
local channel, entry_cost = ARGV[6], tonumber(ARGV[10])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local stale = tonumber(redis.call('HGET', KEYS[3], channel) or '0')
  if stale > 0 then redis.call('DECRBY', KEYS[5], stale) end
  redis.call('HDEL', KEYS[3], channel)
  redis.call('DEL', KEYS[2])
end
local id = redis.call('XADD', KEYS[1], '*', 'd', ARGV[1], 'b', ARGV[2])
local bytes = redis.call('INCRBY', KEYS[2], string.len(ARGV[1]))
local charged = string.len(ARGV[1]) + entry_cost
local n = redis.call('XLEN', KEYS[1])
local max_count, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local trimmed = 0
while n > max_count or (bytes > max_bytes and n > 1) do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  redis.call('XDEL', KEYS[1], oldest[1])
  bytes = redis.call('INCRBY', KEYS[2], -string.len(oldest[2][2]))
  charged = charged - string.len(oldest[2][2]) - entry_cost
  n = n - 1
  trimmed = trimmed + 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('HINCRBY', KEYS[3], channel, charged)
redis.call('ZADD', KEYS[4], tonumber(ARGV[8]) + tonumber(ARGV[5]), channel)
local total = redis.call('INCRBY', KEYS[5], charged)
local evicted = 0
while total > tonumber(ARGV[7]) do
  local oldest = redis.call('ZRANGE', KEYS[4], 0, 1)
  local victim = oldest[1]
  if victim == channel then victim = oldest[2] end
  if not victim then break end
  local cost = tonumber(redis.call('HGET', KEYS[3], victim) or '0')
  redis.call('DEL', ARGV[9] .. 'h:' .. victim, ARGV[9] .. 'hb:' .. victim)
  redis.call('HDEL', KEYS[3], victim)
  redis.call('ZREM', KEYS[4], victim)
  total = redis.call('DECRBY', KEYS[5], cost)
  evicted = evicted + 1
end
return {id, trimmed, evicted}
";

/// Takes channels whose time ran out out of the total (their keys expired
/// by themselves), a thousand at a time. KEYS: `ht`, `htz`, `htb`. ARGV:
/// now in ms. Returns the total.
const SWEEP: &str = r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, channel in ipairs(expired) do
  local cost = tonumber(redis.call('HGET', KEYS[1], channel) or '0')
  redis.call('HDEL', KEYS[1], channel)
  redis.call('ZREM', KEYS[2], channel)
  if cost > 0 then redis.call('DECRBY', KEYS[3], cost) end
end
return tonumber(redis.call('GET', KEYS[3]) or '0')
";

/// Hashed once: the scripts go by their SHA, loaded on the first miss.
static APPEND_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(APPEND));
static SWEEP_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(SWEEP));

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl RedisStore {
    fn history_keys(&self, channel: &str) -> (String, String) {
        (self.channel_scoped("h", channel), self.channel_scoped("hb", channel))
    }

    /// A shard's `ht`, `htz`, `htb`: what each of its channels costs, its
    /// channels by expiry, its total.
    fn history_totals(&self, shard: usize) -> [String; 3] {
        ["ht", "htz", "htb"].map(|name| self.key(shard, name))
    }

    pub async fn history_append(&self, channel: &str, payload: &Payload, rule: Rule) -> StoreResult<Appended> {
        let shard = self.shards().of(channel);
        let (stream, bytes) = self.history_keys(channel);
        let [per_channel, by_expiry, total] = self.history_totals(shard);
        let (offset, trimmed, evicted): (String, usize, usize) = APPEND_SCRIPT
            .key(stream)
            .key(bytes)
            .key(per_channel)
            .key(by_expiry)
            .key(total)
            .arg(&payload.data[..])
            .arg(u8::from(payload.binary))
            .arg(rule.count)
            .arg(rule.max_bytes)
            .arg(rule.ttl.as_millis() as u64)
            .arg(channel)
            // Each shard keeps its share of the total within this script.
            .arg(rule.total_bytes / self.shards().count())
            .arg(unix_ms())
            .arg(self.shards().tag(shard))
            .arg(ENTRY_COST)
            .invoke_async(&mut self.connection())
            .await?;
        Ok(Appended { offset, trimmed, evicted })
    }

    /// Takes expired channels out of each shard's total; what all kept
    /// channels cost now.
    pub async fn history_sweep(&self) -> StoreResult<usize> {
        let sweeps = (0..self.shards().count()).map(|shard| async move {
            let [per_channel, by_expiry, total] = self.history_totals(shard);
            let mut script = SWEEP_SCRIPT.key(per_channel);
            script.key(by_expiry).key(total).arg(unix_ms());
            StoreResult::Ok(script.invoke_async::<usize>(&mut self.connection()).await?)
        });
        Ok(futures_util::future::try_join_all(sweeps).await?.into_iter().sum())
    }

    pub async fn history_read(&self, channel: &str, limit: usize) -> StoreResult<Vec<Kept>> {
        let (stream, _) = self.history_keys(channel);
        let newest_first: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.connection())
            .await?;
        Ok(newest_first.into_iter().rev().filter_map(kept).collect())
    }

    /// The messages after `since` (a stream id), the newest `limit`.
    pub async fn history_since(&self, channel: &str, since: &str, limit: usize) -> StoreResult<Since> {
        let (stream, _) = self.history_keys(channel);
        let from: Vec<(String, Vec<Vec<u8>>)> =
            redis::cmd("XRANGE").arg(stream).arg(since).arg("+").query_async(&mut self.connection()).await?;
        let recovered = from.first().is_some_and(|(offset, _)| offset == since);
        let after: Vec<Kept> = from.into_iter().filter_map(kept).filter(|(offset, _)| offset != since).collect();
        let skip = after.len().saturating_sub(limit);
        Ok(Since { entries: after.into_iter().skip(skip).collect(), recovered })
    }
}

/// A stream entry as it was appended: data, then the binary flag.
fn kept((offset, fields): (String, Vec<Vec<u8>>)) -> Option<Kept> {
    match &fields[..] {
        [_, data, _, binary] => {
            Some((offset, Payload { data: Bytes::from(data.clone()), binary: binary[..] == *b"1" }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(count: usize, max_bytes: usize) -> Rule {
        Rule { count, ttl: Duration::from_secs(60), max_bytes, total_bytes: 1 << 20, envelope: false }
    }

    #[test]
    fn the_longest_prefix_rules_and_bad_specs_are_refused() {
        let specs = ["quiz-=50".into(), "quiz-live-=5/10".into()];
        let rules = Rules::parse(&specs, 1000, 4000, &["quiz-live".into()]).unwrap();
        let rule = |count, secs, envelope| {
            Some(Rule { count, ttl: Duration::from_secs(secs), max_bytes: 1000, total_bytes: 4000, envelope })
        };
        assert_eq!(rules.of("quiz-1"), rule(50, DEFAULT_TTL.as_secs(), false));
        assert_eq!(rules.of("quiz-live-1"), rule(5, 10, true));
        assert_eq!(rules.of("chat"), None);
        for bad in ["quiz-", "quiz-=x", "quiz-=0", "quiz-=5/0", "quiz-=5/x"] {
            assert!(Rules::parse(&[bad.into()], 1000, 4000, &[]).is_err(), "{bad}");
        }
        assert!(Rules::parse(&specs, 1000, 1000, &[]).is_err(), "a total that cannot hold one channel");
    }

    #[tokio::test(start_paused = true)]
    async fn a_channel_keeps_its_last_messages_within_count_bytes_and_time() {
        let history = MemoryHistory::default();
        for n in 1..=5 {
            history.append("c", &Payload::text(format!("m{n}")), rule(3, 1000));
        }
        let texts = |kept: Vec<Kept>| {
            kept.into_iter().map(|(_, p)| String::from_utf8(p.data.to_vec()).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(texts(history.read("c", 10)), ["m3", "m4", "m5"], "the last 3");
        assert_eq!(texts(history.read("c", 2)), ["m4", "m5"]);
        let appended = history.append("c", &Payload::text("x".repeat(8)), rule(3, 10));
        assert_eq!(appended, Appended { offset: "6".into(), trimmed: 2, evicted: 0 }, "past 10 bytes, the oldest go");
        assert_eq!(texts(history.read("c", 10)), ["m5", "xxxxxxxx"]);
        assert_eq!(history.sweep(), 10 + 2 * ENTRY_COST);
        let since = history.since("c", "5", 10);
        assert_eq!((texts(since.entries), since.recovered), (vec!["xxxxxxxx".to_owned()], true), "5 is still kept");
        let since = history.since("c", "2", 10);
        assert_eq!((since.entries.len(), since.recovered), (2, false), "2 is gone: all that is kept, not recovered");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(history.read("c", 10).is_empty(), "past its time to live");
        assert_eq!(history.sweep(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn all_channels_stay_within_the_total_the_least_recently_published_dropped_first() {
        let history = MemoryHistory::default();
        let rule = Rule { total_bytes: 3 * (100 + ENTRY_COST), ..rule(10, 1000) };
        let message = Payload::text("x".repeat(100));
        for channel in ["a", "b", "c"] {
            assert_eq!(history.append(channel, &message, rule).evicted, 0);
        }
        history.append("a", &message, Rule { total_bytes: 10_000, ..rule });
        assert_eq!(history.append("d", &message, rule).evicted, 2, "b, then c: a was published to since");
        assert!(history.read("b", 10).is_empty() && history.read("c", 10).is_empty());
        assert_eq!((history.read("a", 10).len(), history.read("d", 10).len()), (2, 1));
        assert_eq!(history.sweep(), 3 * (100 + ENTRY_COST));
        let big = Rule { total_bytes: 100 + ENTRY_COST, ..rule };
        assert_eq!(history.append("e", &message, big).evicted, 2, "all but the channel appended to");
        assert_eq!(history.sweep(), 100 + ENTRY_COST);
    }
}
