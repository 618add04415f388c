//! The signed token a client presents to come back to its session, and
//! what the upgrade's query string asks for.
//!
//! A token is `SESSIONID.GENERATION.MAC`, the MAC an HMAC-SHA256 (hex) of
//! the rest under the cluster's resume secret. Each resume
//! moves the session to the next generation, so a token works once.

use protocol::handover::Refusal;
use protocol::signing::Signer;
use protocol::SessionId;

use crate::base::close::CloseReason;

/// Signs and checks resume tokens.
pub struct TokenKey {
    signer: Signer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub session: SessionId,
    pub generation: u32,
}

impl TokenKey {
    /// `secret` as given, or a random one (tokens then work on this process only).
    pub fn new(secret: Option<&str>) -> TokenKey {
        TokenKey { signer: Signer::new(secret) }
    }

    pub fn sign(&self, token: Token) -> String {
        format!("{}.{}", payload(token), self.proof(token))
    }

    /// The token's MAC: what a resume passed between gateways carries to
    /// show that a client holds the token.
    pub fn proof(&self, token: Token) -> String {
        self.signer.sign(&payload(token))
    }

    /// Whether `proof` is `token`'s MAC under this cluster's secret.
    pub fn proves(&self, token: Token, proof: &[u8]) -> bool {
        std::str::from_utf8(proof).is_ok_and(|proof| self.signer.verify(&payload(token), proof))
    }

    /// The token, if this cluster signed it.
    pub fn verify(&self, text: &str) -> Option<Token> {
        let (payload, signature) = text.rsplit_once('.')?;
        self.signer.verify(payload, signature).then_some(())?;
        let (session, generation) = payload.split_once('.')?;
        Some(Token { session: session.parse().ok()?, generation: generation.parse().ok()? })
    }
}

impl TokenKey {
    /// The token an SSE client posts its messages with: `SESSIONID.MAC`,
    /// the MAC over another payload than a resume token's, so neither
    /// passes for the other. It lasts as long as the session.
    pub fn sign_sender(&self, session: SessionId) -> String {
        format!("{session}.{}", self.signer.sign(&sender_payload(session)))
    }

    /// The session a send token names, if this cluster signed it.
    pub fn verify_sender(&self, text: &str) -> Option<SessionId> {
        let (session, signature) = text.split_once('.')?;
        let session: SessionId = session.parse().ok()?;
        self.signer.verify(&sender_payload(session), signature).then_some(session)
    }
}

fn sender_payload(session: SessionId) -> String {
    format!("send:{session}")
}

fn payload(token: Token) -> String {
    format!("{}.{}", token.session, token.generation)
}

/// What the upgrade's query string asks for: `resume=1` a resumable
/// session, `resume=TOKEN` (with `last=N`, the messages it got) a resume.
#[derive(Debug, PartialEq, Eq)]
pub enum Ask {
    Plain,
    Resumable,
    Resume { token: String, last: Option<u64> },
}

pub fn ask(query: &str) -> Ask {
    let value = |key: &str| query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key);
    match value("resume").map(|(_, v)| v) {
        None | Some("" | "0") => Ask::Plain,
        Some("1") => Ask::Resumable,
        Some(token) => Ask::Resume { token: token.to_owned(), last: value("last").and_then(|(_, v)| v.parse().ok()) },
    }
}

pub fn refusal_reason(refusal: Refusal) -> CloseReason {
    match refusal {
        Refusal::Expired => CloseReason::ResumeExpired,
        Refusal::Reused => CloseReason::ResumeReused,
        Refusal::Failed => CloseReason::ResumeFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "00000000000000aa";

    #[test]
    fn tokens_verify_only_unaltered_and_under_the_same_secret() {
        let key = TokenKey::new(Some("secret"));
        let token = Token { session: ID.parse().unwrap(), generation: 3 };
        let text = key.sign(token);
        assert_eq!(key.verify(&text), Some(token));
        assert_eq!(key.verify(&text.replacen(".3.", ".4.", 1)), None, "another generation");
        assert_eq!(key.verify(&text.replacen(ID, "00000000000000ab", 1)), None, "another session");
        assert_eq!(TokenKey::new(Some("other")).verify(&text), None, "another secret");
        assert_eq!(key.verify(&text[..text.len() - 2]), None, "cut short");
        assert_eq!(key.verify(&format!("{ID}.0.{}", "0".repeat(64))), None, "forged");
        assert_eq!(key.verify("garbage"), None);
    }

    #[test]
    fn send_tokens_name_one_session_and_are_no_resume_tokens() {
        let key = TokenKey::new(Some("secret"));
        let session = ID.parse().unwrap();
        let send = key.sign_sender(session);
        assert_eq!(key.verify_sender(&send), Some(session));
        assert_eq!(key.verify_sender(&send.replacen(ID, "00000000000000ab", 1)), None, "another session");
        assert_eq!(TokenKey::new(Some("other")).verify_sender(&send), None, "another secret");
        let resume = key.sign(Token { session, generation: 0 });
        assert_eq!(key.verify_sender(&resume), None, "a resume token");
        assert_eq!(key.verify(&send), None, "a send token");
        assert_eq!(key.verify_sender(""), None);
    }

    #[test]
    fn the_query_string_says_what_the_client_wants() {
        assert_eq!(ask("a=b"), Ask::Plain);
        assert_eq!(ask("resume=1"), Ask::Resumable);
        assert_eq!(ask("x=1&resume=T.0.ff&last=12"), Ask::Resume { token: "T.0.ff".into(), last: Some(12) });
        assert_eq!(ask("resume=T.0.ff"), Ask::Resume { token: "T.0.ff".into(), last: None });
    }
}
