//! Which part of a Redis Cluster holds which key.
//!
//! A router group's keys fall into [`CLUSTER_SHARDS`] shards, each one
//! hash tag: a channel's keys (members, presence, history) in its
//! channel's shard, a session's in its session's, a user's in its user's.
//! So a script or a MULTI still touches one slot, while adding masters
//! adds capacity. Why a fixed number of shards rather than a tag per
//! channel: each shard keeps its own write fence, which a router reads
//! every second to see whether a master lost confirmed writes (a tag per
//! channel would need a read per channel), and its own share of
//! `--history-total-bytes`, which one script keeps atomically.
//!
//! Each shard's tag is chosen so that its slot lies in its own sixteenth
//! of the 16,384 slots: a cluster made by `redis-cli --cluster create`
//! gives each master contiguous slots, so M masters (up to 16) hold the
//! shards evenly. One Redis, or Redis behind Sentinels, is one shard
//! whose keys keep the plain prefix.

/// Shards on a Redis Cluster.
pub const CLUSTER_SHARDS: usize = 16;

/// Redis Cluster's slots.
const SLOTS: u16 = 16_384;

/// The hash tag of each shard, or the bare prefix on one Redis.
pub struct Shards {
    tags: Vec<String>,
}

impl Shards {
    /// One shard: keys are `PREFIX` and their name.
    pub fn single(prefix: &str) -> Shards {
        Shards { tags: vec![prefix.to_owned()] }
    }

    /// [`CLUSTER_SHARDS`] shards: keys are `{PREFIX<n>}` and their name,
    /// `n` the first number whose slot lies in that shard's range.
    pub fn cluster(prefix: &str) -> Shards {
        let range = SLOTS / CLUSTER_SHARDS as u16;
        let tags = (0..CLUSTER_SHARDS as u16)
            .map(|shard| {
                let tag = |n: u32| format!("{prefix}{n}");
                let n = (0..).find(|&n| slot(&tag(n)) / range == shard).expect("every range is hit");
                format!("{{{}}}", tag(n))
            })
            .collect();
        Shards { tags }
    }

    pub fn count(&self) -> usize {
        self.tags.len()
    }

    /// The shard that holds what belongs to `scope` (a channel, a session
    /// id, a user, a gateway).
    pub fn of(&self, scope: &str) -> usize {
        usize::from(crc16::State::<crc16::XMODEM>::calculate(scope.as_bytes())) % self.tags.len()
    }

    /// A key in `shard`.
    pub fn key(&self, shard: usize, name: &str) -> String {
        format!("{}{name}", self.tags[shard])
    }

    /// What a key in `shard` starts with (for scripts that build keys).
    pub fn tag(&self, shard: usize) -> &str {
        &self.tags[shard]
    }
}

/// A key's Redis Cluster slot: CRC16 of its hash tag, or of the key.
fn slot(key: &str) -> u16 {
    let tagged = key.find('{').and_then(|open| {
        let close = key[open + 1..].find('}')?;
        Some(&key[open + 1..open + 1 + close]).filter(|tag| !tag.is_empty())
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key).as_bytes()) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_of_a_cluster_lies_in_its_own_sixteenth_of_the_slots() {
        let shards = Shards::cluster("fk:");
        assert_eq!(shards.count(), CLUSTER_SHARDS);
        for shard in 0..CLUSTER_SHARDS {
            let key = shards.key(shard, "ch:room");
            assert!(key.starts_with("{fk:") && key.ends_with("}ch:room"), "{key}");
            assert_eq!(usize::from(slot(&key) / 1024), shard, "{key}");
            assert_eq!(slot(&key), slot(&shards.key(shard, "fence")), "one slot per shard");
        }
        // Redis's own reference: CRC16 of "123456789" is 0x31C3.
        assert_eq!(slot("123456789"), 0x31C3 % SLOTS);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        let spread: std::collections::HashSet<usize> = (0..1000).map(|n| shards.of(&format!("room-{n}"))).collect();
        assert_eq!(spread.len(), CLUSTER_SHARDS, "channels spread over every shard");
    }

    #[test]
    fn one_redis_is_one_shard_with_the_plain_prefix() {
        let shards = Shards::single("fk:");
        assert_eq!((shards.count(), shards.of("anything")), (1, 0));
        assert_eq!(shards.key(0, "ch:room"), "fk:ch:room");
    }
}
