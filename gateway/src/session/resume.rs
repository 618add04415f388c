//! Session resume: the signed token a client presents to come back to its
//! session, and what a session keeps so that it misses nothing meanwhile.
//!
//! A token is `SESSIONID.GENERATION.MAC`, the MAC an HMAC-SHA256 (hex) of
//! the rest under the cluster's resume secret. Each resume
//! moves the session to the next generation, so a token works once.

use std::collections::VecDeque;

use protocol::handover::{Outgoing, Refusal};
use protocol::signing::Signer;
use protocol::SessionId;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use super::close::CloseReason;
use super::outbox::Limits;
use crate::fastcgi::ParamBlock;

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

/// A resumable session's numbering of what it wrote, and the last of it,
/// kept within the resume buffer's bounds.
#[derive(Debug)]
pub struct Written {
    pub generation: u32,
    /// The number the next message written gets (the first is 1).
    pub next_seq: u64,
    recent: VecDeque<Message>,
    bytes: usize,
}

/// A client that asks for messages older than the session still keeps.
#[derive(Debug, PartialEq, Eq)]
pub struct Gap;

impl Written {
    pub fn new(generation: u32, next_seq: u64) -> Written {
        Written { generation, next_seq, recent: VecDeque::new(), bytes: 0 }
    }

    /// Numbers a message about to be written and keeps it.
    pub fn record(&mut self, message: &Message, limits: &Limits) {
        if !(message.is_text() || message.is_binary()) {
            return;
        }
        self.next_seq += 1;
        self.bytes += message.len();
        self.recent.push_back(message.clone());
        while self.recent.len() > limits.parked_messages || self.bytes > limits.parked_bytes {
            let dropped = self.recent.pop_front().expect("over a bound means not empty");
            self.bytes -= dropped.len();
        }
    }

    /// The messages after the client's `last` (all it got when not given),
    /// to write again; from now on only those are kept.
    pub fn replay_after(&mut self, last: Option<u64>) -> Result<Vec<Message>, Gap> {
        let newest = self.next_seq - 1;
        let last = last.unwrap_or(newest).min(newest);
        let oldest_kept = self.next_seq - self.recent.len() as u64;
        if last + 1 < oldest_kept {
            return Err(Gap);
        }
        let skip = (last + 1 - oldest_kept) as usize;
        for dropped in self.recent.drain(..skip) {
            self.bytes -= dropped.len();
        }
        Ok(self.recent.iter().cloned().collect())
    }

    pub fn recent(&self) -> impl Iterator<Item = &Message> {
        self.recent.iter()
    }

    /// Rebuilt from a hand-over.
    pub fn from_handover(generation: u32, next_seq: u64, recent: Vec<Outgoing>) -> Written {
        let recent: VecDeque<Message> =
            recent.into_iter().map(|m| crate::router_link::to_message(m.data, m.binary)).collect();
        let bytes = recent.iter().map(Message::len).sum();
        Written { generation, next_seq, recent, bytes }
    }
}

/// A message as a hand-over carries it.
pub fn outgoing(message: &Message) -> Outgoing {
    Outgoing { binary: message.is_binary(), data: message.clone().into_data() }
}

/// What a session hands its next connection: the backend's meta and the
/// numbering of what was written (its generation already moved on).
#[derive(Debug)]
pub struct Carried {
    pub meta: ParamBlock,
    pub written: Written,
}

/// A new connection's claim on a session, waiting in its outbox.
#[derive(Debug)]
pub struct TakeRequest {
    pub generation: u32,
    pub reply: oneshot::Sender<Result<Carried, Refusal>>,
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
    fn the_query_string_says_what_the_client_wants() {
        assert_eq!(ask("a=b"), Ask::Plain);
        assert_eq!(ask("resume=1"), Ask::Resumable);
        assert_eq!(ask("x=1&resume=T.0.ff&last=12"), Ask::Resume { token: "T.0.ff".into(), last: Some(12) });
        assert_eq!(ask("resume=T.0.ff"), Ask::Resume { token: "T.0.ff".into(), last: None });
    }

    fn limits(messages: usize, bytes: usize) -> Limits {
        Limits { messages: 10, bytes: 1000, parked_messages: messages, parked_bytes: bytes }
    }

    #[test]
    fn replays_what_the_client_missed_or_reports_a_gap() {
        let mut written = Written::new(0, 1);
        for i in 1..=5 {
            written.record(&Message::text(format!("m{i}")), &limits(3, 100));
        }
        written.record(&Message::Ping(Default::default()), &limits(3, 100));
        assert_eq!(written.next_seq, 6);
        // Kept: m3, m4, m5 (numbers 3..=5).
        assert_eq!(written.replay_after(Some(1)), Err(Gap));
        assert_eq!(written.replay_after(Some(3)), Ok(vec![Message::text("m4"), Message::text("m5")]));
        assert_eq!(written.replay_after(None), Ok(vec![]));
        assert_eq!(written.recent().count(), 0);
    }

    #[test]
    fn the_byte_bound_evicts_too() {
        let mut written = Written::new(0, 1);
        written.record(&Message::text("aaaa"), &limits(10, 6));
        written.record(&Message::text("bbbb"), &limits(10, 6));
        assert_eq!(written.recent().count(), 1);
        assert_eq!(written.replay_after(Some(1)), Ok(vec![Message::text("bbbb")]));
    }
}
