//! Accounts' passwords (argon2, never stored plain) and the signed session
//! cookie that proves a login to a stateless app.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use sha2::Sha256;

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
    secret: Vec<u8>,
}

impl CookieSigner {
    /// `secret` as given, or 32 random bytes (logins then last as long as the process).
    pub fn new(secret: Option<&str>) -> CookieSigner {
        let secret = match secret {
            Some(secret) => secret.as_bytes().to_vec(),
            None => {
                let mut random = vec![0u8; 32];
                getrandom::fill(&mut random).expect("the OS random source failed");
                random
            }
        };
        CookieSigner { secret }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("any key length");
        mac.update(payload.as_bytes());
        mac
    }

    /// `uid.expiry.signature`, the cookie's value.
    pub fn sign(&self, uid: u64, now: u64) -> String {
        let payload = format!("{uid}.{}", now + COOKIE_SECONDS);
        let signature: String = self.mac(&payload).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("{payload}.{signature}")
    }

    /// The uid of a valid, unexpired cookie value.
    pub fn verify(&self, value: &str, now: u64) -> Option<u64> {
        let (payload, signature) = value.rsplit_once('.')?;
        let signature: Vec<u8> = (0..signature.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(signature.get(i..i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        self.mac(payload).verify_slice(&signature).ok()?;
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
