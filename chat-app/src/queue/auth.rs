//! Accounts' passwords (argon2, never stored plain) and the signed session
//! cookie that proves a login to a stateless app.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use protocol::signing::Signer;

pub const COOKIE: &str = "fk_session";
/// A login lasts this long.
pub const COOKIE_SECONDS: u64 = 24 * 3600;

pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random source failed");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes encode");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 hashes any password").to_string()
}

pub fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// Signs and checks `uid.expiry` with a secret shared by every app process.
pub struct CookieSigner {
    signer: Signer,
}

impl CookieSigner {
    /// `secret` as given, or a random one (logins then last as long as the process).
    pub fn new(secret: Option<&str>) -> CookieSigner {
        CookieSigner { signer: Signer::new(secret) }
    }

    /// `uid.expiry.signature`, the cookie's value.
    pub fn sign(&self, uid: u64, now: u64) -> String {
        let payload = format!("{uid}.{}", now + COOKIE_SECONDS);
        format!("{payload}.{}", self.signer.sign(&payload))
    }

    /// The uid of a valid, unexpired cookie value.
    pub fn verify(&self, value: &str, now: u64) -> Option<u64> {
        let (payload, signature) = value.rsplit_once('.')?;
        self.signer.verify(payload, signature).then_some(())?;
        let (uid, expiry) = payload.split_once('.')?;
        (expiry.parse::<u64>().ok()? > now).then_some(())?;
        uid.parse().ok()
    }
}

/// The session cookie's value in a `Cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_and_verified() {
        let hash = hash_password("hunter2");
        assert!(hash.starts_with("$argon2") && !hash.contains("hunter2"));
        assert!(password_matches("hunter2", &hash));
        assert!(!password_matches("hunter3", &hash));
    }

    #[test]
    fn cookies_are_signed_expire_and_resist_tampering() {
        let signer = CookieSigner::new(Some("secret"));
        let cookie = signer.sign(42, 1000);
        assert_eq!(signer.verify(&cookie, 1000), Some(42));
        assert_eq!(signer.verify(&cookie, 1000 + COOKIE_SECONDS), None, "expired");
        assert_eq!(signer.verify(&cookie.replacen("42.", "43.", 1), 1000), None, "another uid");
        assert_eq!(CookieSigner::new(Some("other")).verify(&cookie, 1000), None, "another secret");
        assert_eq!(cookie_value(&format!("a=b; {COOKIE}={cookie}; c=d")), Some(cookie.as_str()));
    }
}
