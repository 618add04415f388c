//! HMAC-SHA256 signatures, in hex, under a secret that every process of a
//! deployment shares: what lets stateless processes trust a token one of
//! them issued (the gateways' resume tokens, the queue's login cookies).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub struct Signer {
    secret: Vec<u8>,
}

impl Signer {
    /// `secret` as given, or 32 random bytes: tokens are then good for
    /// this process only.
    pub fn new(secret: Option<&str>) -> Signer {
        let secret = match secret {
            Some(secret) => secret.as_bytes().to_vec(),
            None => {
                let mut random = vec![0u8; 32];
                getrandom::fill(&mut random).expect("the OS random source failed");
                random
            }
        };
        Signer { secret }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("any key length");
        mac.update(payload.as_bytes());
        mac
    }

    /// The signature of `payload`, as 64 hex characters.
    pub fn sign(&self, payload: &str) -> String {
        self.mac(payload).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `signature` is `payload`'s, compared in constant time.
    pub fn verify(&self, payload: &str, signature: &str) -> bool {
        let bytes: Option<Vec<u8>> =
            (0..signature.len()).step_by(2).map(|i| u8::from_str_radix(signature.get(i..i + 2)?, 16).ok()).collect();
        bytes.is_some_and(|bytes| self.mac(payload).verify_slice(&bytes).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_for_their_payload_and_secret_only() {
        let signer = Signer::new(Some("secret"));
        let signature = signer.sign("a.1");
        assert_eq!(signature.len(), 64);
        assert!(signer.verify("a.1", &signature));
        assert!(!signer.verify("a.2", &signature));
        assert!(!Signer::new(Some("other")).verify("a.1", &signature));
        assert!(!signer.verify("a.1", &signature[..62]));
        assert!(!signer.verify("a.1", "zz"));
        assert!(!Signer::new(None).verify("a.1", &signature));
    }
}
