//! History: the last messages of the channels `--history` names, kept so
//! that a late joiner gets them before live ones, and a backend can read
//! them. Bounded per channel in count and bytes, and dropped a
//! time-to-live after the channel's last publish. In memory, or in Redis
//! as a stream per channel, `h:<channel>`, with its bytes in
//! `hb:<channel>`, trimmed by one script so that no bound is passed.

use std::collections::{HashMap, VecDeque};
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
    /// Its messages go to clients in an envelope with their offset
    /// (`--history-envelope`), so a client can recover from one.
    pub envelope: bool,
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
    pub fn parse(specs: &[String], max_bytes: usize, envelopes: &[String]) -> anyhow::Result<Rules> {
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
            rules.push((prefix.to_owned(), Rule { count, ttl, max_bytes, envelope: false }));
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

/// What an append did: the offset it got, and how many older messages it pushed out.
#[derive(Debug, PartialEq, Eq)]
pub struct Appended {
    pub offset: String,
    pub trimmed: usize,
}

#[derive(Default)]
pub struct MemoryHistory {
    channels: Mutex<HashMap<String, Channel>>,
    /// Offsets are drawn from one count for all channels, so a channel
    /// dropped and kept again never gives an offset twice.
    last_offset: std::sync::atomic::AtomicU64,
}

struct Channel {
    entries: VecDeque<(u64, Payload)>,
    bytes: usize,
    expires: Instant,
}

impl MemoryHistory {
    pub fn append(&self, channel: &str, payload: &Payload, rule: Rule) -> Appended {
        let now = Instant::now();
        let mut channels = self.channels.lock().unwrap();
        let kept = channels.entry(channel.to_owned()).or_insert_with(|| Channel {
            entries: VecDeque::new(),
            bytes: 0,
            expires: now,
        });
        if kept.expires <= now {
            kept.entries.clear();
            kept.bytes = 0;
        }
        let offset = self.last_offset.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        kept.bytes += payload.data.len();
        kept.entries.push_back((offset, payload.clone()));
        let mut trimmed = 0;
        while kept.entries.len() > rule.count || (kept.bytes > rule.max_bytes && kept.entries.len() > 1) {
            let (_, old) = kept.entries.pop_front().expect("more than one entry");
            kept.bytes -= old.data.len();
            trimmed += 1;
        }
        kept.expires = now + rule.ttl;
        Appended { offset: offset.to_string(), trimmed }
    }

    pub fn read(&self, channel: &str, limit: usize) -> Vec<Kept> {
        let channels = self.channels.lock().unwrap();
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

    /// Drops the channels whose time ran out; how many bytes are kept now.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut channels = self.channels.lock().unwrap();
        channels.retain(|_, kept| kept.expires > now);
        channels.values().map(|kept| kept.bytes).sum()
    }
}

/// Appends one message and trims the oldest past the count or the bytes
/// (never the one just added), then sets both keys' time to live.
/// KEYS: the stream, its byte count. ARGV: data, binary flag, count,
/// bytes, ttl in ms. Returns the new entry's id and how many went.
const APPEND: &str = r"
local id = redis.call('XADD', KEYS[1], '*', 'd', ARGV[1], 'b', ARGV[2])
local bytes = redis.call('INCRBY', KEYS[2], string.len(ARGV[1]))
local n = redis.call('XLEN', KEYS[1])
local max_count, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local trimmed = 0
while n > max_count or (bytes > max_bytes and n > 1) do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  redis.call('XDEL', KEYS[1], oldest[1])
  bytes = redis.call('INCRBY', KEYS[2], -string.len(oldest[2][2]))
  n = n - 1
  trimmed = trimmed + 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {id, trimmed}
";

/// Hashed once: the script goes by its SHA, loaded on the first miss.
static APPEND_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(APPEND));

impl RedisStore {
    fn history_keys(&self, channel: &str) -> (String, String) {
        (self.key(&format!("h:{channel}")), self.key(&format!("hb:{channel}")))
    }

    pub async fn history_append(&self, channel: &str, payload: &Payload, rule: Rule) -> StoreResult<Appended> {
        let (stream, bytes) = self.history_keys(channel);
        let (offset, trimmed): (String, usize) = APPEND_SCRIPT
            .key(stream)
            .key(bytes)
            .arg(&payload.data[..])
            .arg(u8::from(payload.binary))
            .arg(rule.count)
            .arg(rule.max_bytes)
            .arg(rule.ttl.as_millis() as u64)
            .invoke_async(&mut self.connection())
            .await?;
        Ok(Appended { offset, trimmed })
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
        Rule { count, ttl: Duration::from_secs(60), max_bytes, envelope: false }
    }

    #[test]
    fn the_longest_prefix_rules_and_bad_specs_are_refused() {
        let rules = Rules::parse(&["quiz-=50".into(), "quiz-live-=5/10".into()], 1000, &["quiz-live".into()]).unwrap();
        let rule =
            |count, secs, envelope| Some(Rule { count, ttl: Duration::from_secs(secs), max_bytes: 1000, envelope });
        assert_eq!(rules.of("quiz-1"), rule(50, DEFAULT_TTL.as_secs(), false));
        assert_eq!(rules.of("quiz-live-1"), rule(5, 10, true));
        assert_eq!(rules.of("chat"), None);
        for bad in ["quiz-", "quiz-=x", "quiz-=0", "quiz-=5/0", "quiz-=5/x"] {
            assert!(Rules::parse(&[bad.into()], 1000, &[]).is_err(), "{bad}");
        }
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
        assert_eq!(appended, Appended { offset: "6".into(), trimmed: 2 }, "past 10 bytes, the oldest go");
        assert_eq!(texts(history.read("c", 10)), ["m5", "xxxxxxxx"]);
        assert_eq!(history.sweep(), 10);
        let since = history.since("c", "5", 10);
        assert_eq!((texts(since.entries), since.recovered), (vec!["xxxxxxxx".to_owned()], true), "5 is still kept");
        let since = history.since("c", "2", 10);
        assert_eq!((since.entries.len(), since.recovered), (2, false), "2 is gone: all that is kept, not recovered");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(history.read("c", 10).is_empty(), "past its time to live");
        assert_eq!(history.sweep(), 0);
    }
}
