use std::fmt;

/// A session id: 16 lowercase hex characters, as fooking's backends expect.
///
/// Kept as its ASCII bytes because that is how it travels on every wire
/// (router frames, FastCGI params, JSON), so it is never re-encoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a session id is 16 lowercase hex characters")]
pub struct InvalidSessionId;

fn is_id_byte(byte: &u8) -> bool {
    matches!(byte, b'0'..=b'9' | b'a'..=b'f')
}

impl SessionId {
    pub const LEN: usize = 16;

    /// A fresh, unpredictable id, unique across gateways and restarts
    /// without coordination: a counter run through SipHash under a key the
    /// OS randomised for this process. As likely to collide as 64 random
    /// bits, without a system call per id.
    pub fn random() -> SessionId {
        use std::hash::BuildHasher;
        static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SessionId::from_u64(KEY.get_or_init(std::hash::RandomState::new).hash_one(n))
    }

    pub fn from_u64(value: u64) -> SessionId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = HEX[((value >> (60 - 4 * i)) & 0xf) as usize];
        }
        SessionId(out)
    }

    pub fn parse(bytes: &[u8]) -> Result<SessionId, InvalidSessionId> {
        let raw: [u8; 16] = bytes.try_into().map_err(|_| InvalidSessionId)?;
        match raw.iter().all(is_id_byte) {
            true => Ok(SessionId(raw)),
            false => Err(InvalidSessionId),
        }
    }

    /// The ids packed back to back in `area`, all checked before the first
    /// is handed out: a list is taken whole or refused whole, without
    /// building a vector of them.
    pub fn packed(area: &[u8]) -> Result<impl ExactSizeIterator<Item = SessionId> + '_, InvalidSessionId> {
        if !area.len().is_multiple_of(SessionId::LEN) || !area.iter().all(is_id_byte) {
            return Err(InvalidSessionId);
        }
        Ok(area.chunks_exact(SessionId::LEN).map(|id| SessionId(id.try_into().expect("chunks of LEN"))))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex ever gets in.
        std::str::from_utf8(&self.0).expect("session ids are ASCII")
    }
}

impl std::str::FromStr for SessionId {
    type Err = InvalidSessionId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionId::parse(s.as_bytes())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.as_str())
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_lowercase_hex_and_distinct() {
        let a = SessionId::random();
        let b = SessionId::random();
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.as_bytes()), Ok(a));
    }

    #[test]
    fn from_u64_is_big_endian_hex() {
        assert_eq!(SessionId::from_u64(0x0123_4567_89ab_cdef).as_str(), "0123456789abcdef");
    }

    #[test]
    fn rejects_uppercase_short_and_non_hex() {
        assert!(SessionId::parse(b"0123456789ABCDEF").is_err());
        assert!(SessionId::parse(b"0123").is_err());
        assert!(SessionId::parse(b"0123456789abcdeg").is_err());
    }
}
