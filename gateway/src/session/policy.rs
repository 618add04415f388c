//! A session's decisions, apart from its sockets: what a backend's answer
//! does, what a goodbye or a drop does, whether a message may wait for the
//! backend, whether a resume may take the session, and what a client sees.
//! Pure functions, tested without a socket; `task` carries them out.

use std::time::Duration;

use bytes::Bytes;
use protocol::cmd::Channel;
use protocol::handover::Refusal;

use super::event::EventKind;
use super::SessionSettings;
use crate::base::close::CloseReason;
use crate::base::message::{Message, Payload};
use crate::base::transport::Violation;
use crate::upstream::fastcgi::{CgiResponse, UpstreamError};

/// What a backend's answer to one of the session's events does.
#[derive(Debug, PartialEq)]
pub enum Answered {
    /// Send this to the client, if anything (an empty body sends nothing).
    Deliver(Option<Message>),
    /// The connect event failed: the session never started, and the client
    /// is closed (1011).
    ConnectFailed,
    /// The connect event was refused: the client is closed with this code
    /// and reason, and the backend gets no close event.
    Refused { code: u16, reason: String },
    /// A close or offline event the backend never took: given up (logged
    /// and counted where), with no client to tell.
    Nothing,
}

/// `error_reply`: a message answered 5xx with an empty body gets the
/// gateway's error frame, as when the backend fails (a PHP fatal error).
pub fn answered(kind: EventKind, result: &Result<CgiResponse, UpstreamError>, error_reply: bool) -> Answered {
    let response = match result {
        Err(_) if kind == EventKind::Connect => return Answered::ConnectFailed,
        Err(_) if matches!(kind, EventKind::Close | EventKind::Offline) => return Answered::Nothing,
        Err(err) => return Answered::Deliver(Some(error_message(err))),
        Ok(response) => response,
    };
    if kind == EventKind::Connect && !response.is_success() {
        // 4xx becomes 4000 + status, so a browser can read it; any other 1008.
        let code = if (400..500).contains(&response.status) { 4000 + response.status } else { 1008 };
        return Answered::Refused { code, reason: String::from_utf8_lossy(&response.body).into_owned() };
    }
    let failed_silently = response.status >= 500 && response.body.is_empty();
    if error_reply && failed_silently && matches!(kind, EventKind::Message { .. }) {
        return Answered::Deliver(Some(gateway_error(502, &format!("backend failed (status {})", response.status))));
    }
    let speaks = !response.body.is_empty() || response.says_empty_message();
    Answered::Deliver(speaks.then(|| Message::new(Payload::new(response.body.clone()), response.is_binary())))
}

/// Whether a client's message asks to join a channel: with
/// `--client-subscribe`, a text message that begins `{"fk":` is the
/// gateway's, and must be `{"fk":"subscribe","channel":NAME}`; the channel
/// name, or why it is not one. Anything else is the backend's message.
pub fn subscribe_request(settings: &SessionSettings, body: &[u8], binary: bool) -> Option<Result<Bytes, &'static str>> {
    if !settings.client_subscribe || binary || !body.starts_with(br#"{"fk":"#) {
        return None;
    }
    let ask: serde_json::Value = match serde_json::from_slice(body) {
        Ok(ask) => ask,
        Err(_) => return Some(Err(r#"expected {"fk":"subscribe","channel":NAME}"#)),
    };
    if ask["fk"] != "subscribe" {
        return Some(Err(r#"the gateway knows only {"fk":"subscribe","channel":NAME}"#));
    }
    let channel = ask["channel"]
        .as_str()
        .ok_or("no channel")
        .and_then(|name| Channel::new(name).map_err(|_| "not a channel name"));
    Some(channel.map(|c| Bytes::from(c.as_str().to_owned())))
}

/// What the client is told of its subscribe, and the channel to join if
/// the backend allowed it: a 2xx joins; anything else, a failure
/// included, refuses, with the status.
pub fn subscribe_answered(channel: &[u8], result: &Result<CgiResponse, UpstreamError>) -> (Answered, Option<Channel>) {
    let name = String::from_utf8_lossy(channel).into_owned();
    let status = match result {
        Ok(response) if response.is_success() => {
            let joined = serde_json::json!({"type": "subscribed", "source": "gateway", "channel": name});
            let channel = Channel::new(name).ok();
            return (Answered::Deliver(Some(Message::text(joined.to_string()))), channel);
        }
        Ok(response) => response.status,
        Err(err) => failure_status(err),
    };
    let refused =
        serde_json::json!({"type": "subscribe_refused", "source": "gateway", "channel": name, "code": status});
    (Answered::Deliver(Some(Message::text(refused.to_string()))), None)
}

/// The status a failed backend call stands for: 504 timed out, 503 else.
fn failure_status(err: &UpstreamError) -> u16 {
    if err.is_timeout() {
        504
    } else {
        503
    }
}

/// The error the gateway itself tells a client whose message failed.
pub fn error_message(err: &UpstreamError) -> Message {
    match failure_status(err) {
        504 => gateway_error(504, "backend did not answer in time"),
        status => gateway_error(status, "backend unavailable"),
    }
}

/// An error the gateway itself tells the client, as a JSON text message.
pub fn gateway_error(code: u16, text: &str) -> Message {
    let error = serde_json::json!({"type": "error", "source": "gateway", "code": code, "message": text});
    Message::text(error.to_string())
}

/// Whether one more message of `len` bytes may wait for the backend
/// behind `events` messages of `bytes` bytes. One message always fits.
pub fn admits_message(settings: &SessionSettings, events: usize, bytes: usize, len: usize) -> bool {
    let too_many_bytes = bytes > 0 && bytes + len > settings.max_pending_bytes;
    events < settings.max_pending_events && !too_many_bytes
}

/// Whether a client's close frame is a goodbye (1000, 1001 or no code),
/// which ends its session at once; any other code counts as a drop.
pub fn is_goodbye(code: Option<u16>) -> bool {
    matches!(code, None | Some(1000 | 1001))
}

/// Whether a session whose open client dropped waits for it to resume
/// (the backend hears it is offline) instead of ending.
pub fn parks_on_drop(resumable: bool, grace: Duration, backend_knows_session: bool) -> bool {
    resumable && !grace.is_zero() && backend_knows_session
}

/// Whether closing an open client for `reason` parks its session instead:
/// a silent client of a resumable session is likely behind a dead network.
pub fn parks_instead_of_closing(reason: CloseReason, resumable: bool) -> bool {
    reason == CloseReason::IdleTimeout && resumable
}

/// Whether the stream is still in step after closing for `reason`, to
/// wait for the client's half of the close handshake: not after a frame
/// the transport refused.
pub fn close_in_step(reason: CloseReason) -> bool {
    !matches!(reason, CloseReason::TooBig | CloseReason::ProtocolError | CloseReason::InvalidPayload)
}

/// Why a client that sent what it may not is closed.
pub fn violation_close(violation: &Violation) -> CloseReason {
    match violation {
        Violation::TooBig(_) => CloseReason::TooBig,
        Violation::InflateBudget(_) => CloseReason::InflateBudget,
        Violation::Protocol(_) => CloseReason::ProtocolError,
        Violation::InvalidPayload(_) => CloseReason::InvalidPayload,
    }
}

/// Whether a new connection may take the session with a token of
/// `requested` generation. `generation` is the session's own (`None`: it
/// is not resumable); `reachable` says its client is open or parked (not
/// closing, gone or already handed over).
pub fn may_take(generation: Option<u32>, reachable: bool, requested: u32) -> Result<(), Refusal> {
    match generation {
        Some(current) if current != requested => Err(Refusal::Reused),
        Some(_) if reachable => Ok(()),
        _ => Err(Refusal::Expired),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::upstream::fastcgi::Address;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Result<CgiResponse, UpstreamError> {
        let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        Ok(CgiResponse { status, headers, body: Bytes::copy_from_slice(body.as_bytes()) })
    }

    fn failed(timeout: bool) -> Result<CgiResponse, UpstreamError> {
        let addr = Address::Tcp("127.0.0.1:1".into());
        Err(match timeout {
            true => UpstreamError::Timeout { addr, timeout: Duration::from_secs(1) },
            false => UpstreamError::Unanswered { addr, reason: "reset".into() },
        })
    }

    fn settings() -> SessionSettings {
        SessionSettings::new(&<crate::Config as clap::Parser>::parse_from(["gateway"]))
    }

    #[test]
    fn a_refused_connect_closes_with_4000_plus_a_4xx_status_or_1008() {
        let refused = answered(EventKind::Connect, &response(403, &[], "no entry"), true);
        assert_eq!(refused, Answered::Refused { code: 4403, reason: "no entry".into() });
        let refused = answered(EventKind::Connect, &response(500, &[], ""), true);
        assert_eq!(refused, Answered::Refused { code: 1008, reason: String::new() });
        assert_eq!(answered(EventKind::Connect, &failed(false), true), Answered::ConnectFailed);
        let message = EventKind::Message { binary: false };
        assert_eq!(
            answered(message, &response(404, &[], "body"), true),
            Answered::Deliver(Some(Message::text("body")))
        );
    }

    #[test]
    fn an_answer_is_text_binary_or_nothing_and_failures_become_gateway_errors() {
        let message = EventKind::Message { binary: false };
        assert_eq!(
            answered(message, &response(200, &[], ""), true),
            Answered::Deliver(None),
            "an empty body sends nothing"
        );
        let empty = response(200, &[("X-Send-Empty", "1")], "");
        assert_eq!(answered(message, &empty, true), Answered::Deliver(Some(Message::text(""))), "unless it says so");
        let binary = response(200, &[("Content-Type", "application/octet-stream")], "x");
        assert_eq!(answered(message, &binary, true), Answered::Deliver(Some(Message::Binary("x".into()))));
        let Answered::Deliver(Some(Message::Text(error))) = answered(message, &failed(true), true) else { panic!() };
        let error = std::str::from_utf8(error.data()).unwrap();
        assert!(error.contains("504"), "{error}");
        assert_eq!(answered(EventKind::Close, &failed(false), true), Answered::Nothing, "given up where it was sent");
    }

    #[test]
    fn a_silent_5xx_to_a_message_becomes_the_gateway_error_unless_turned_off() {
        let message = EventKind::Message { binary: false };
        let fatal = response(500, &[], "");
        let Answered::Deliver(Some(Message::Text(error))) = answered(message, &fatal, true) else { panic!() };
        let error: serde_json::Value = serde_json::from_slice(error.data()).unwrap();
        assert_eq!((error["type"].as_str(), error["code"].as_u64()), (Some("error"), Some(502)));
        assert_eq!(answered(message, &fatal, false), Answered::Deliver(None));
        let spoken = response(503, &[], "busy");
        assert_eq!(answered(message, &spoken, true), Answered::Deliver(Some(Message::text("busy"))), "its own words");
        assert_eq!(answered(EventKind::Close, &fatal, true), Answered::Deliver(None), "no client asked");
    }

    #[test]
    fn messages_wait_within_count_and_bytes_and_one_always_fits() {
        let settings = settings();
        assert!(admits_message(&settings, 0, 0, 10 << 20), "alone, any size");
        assert!(admits_message(&settings, 1, 512 << 10, 512 << 10));
        assert!(!admits_message(&settings, 1, 512 << 10, (512 << 10) + 1), "past --max-pending-bytes");
        assert!(!admits_message(&settings, settings.max_pending_events, 1, 1), "past --max-pending-events");
    }

    #[test]
    fn goodbyes_end_a_session_and_drops_park_a_resumable_one() {
        assert!(is_goodbye(None) && is_goodbye(Some(1000)) && is_goodbye(Some(1001)));
        assert!(!is_goodbye(Some(1006)) && !is_goodbye(Some(4000)));
        let grace = Duration::from_secs(30);
        assert!(parks_on_drop(true, grace, true));
        assert!(!parks_on_drop(false, grace, true), "not resumable");
        assert!(!parks_on_drop(true, Duration::ZERO, true), "resume off");
        assert!(!parks_on_drop(true, grace, false), "the backend never saw it start");
        assert!(parks_instead_of_closing(CloseReason::IdleTimeout, true));
        assert!(!parks_instead_of_closing(CloseReason::Kicked, true));
        assert!(!close_in_step(CloseReason::TooBig) && close_in_step(CloseReason::Kicked));
        let violation = |v: Violation| violation_close(&v).code();
        assert_eq!(violation(Violation::TooBig(String::new())), 1009);
        assert_eq!(violation(Violation::Protocol(String::new())), 1002);
        assert_eq!(violation(Violation::InvalidPayload(String::new())), 1007);
        assert!(!close_in_step(CloseReason::InvalidPayload));
    }

    #[test]
    fn a_resume_takes_a_session_with_its_current_token_only() {
        assert_eq!(may_take(Some(3), true, 3), Ok(()));
        assert_eq!(may_take(Some(3), true, 2), Err(Refusal::Reused), "an older token");
        assert_eq!(may_take(Some(3), false, 3), Err(Refusal::Expired), "closing or gone");
        assert_eq!(may_take(None, true, 0), Err(Refusal::Expired), "not resumable");
    }

    #[test]
    fn a_subscribe_is_the_gateways_only_when_on_and_well_formed() {
        let off = settings();
        let on = SessionSettings { client_subscribe: true, ..settings() };
        let ask = br#"{"fk":"subscribe","channel":"room"}"#;
        assert_eq!(subscribe_request(&off, ask, false), None, "off: the backend's message");
        assert_eq!(subscribe_request(&on, ask, true), None, "binary: the backend's message");
        assert_eq!(subscribe_request(&on, br#"{"type":"msg"}"#, false), None);
        assert_eq!(subscribe_request(&on, ask, false), Some(Ok(Bytes::from_static(b"room"))));
        for bad in [
            &br#"{"fk":"join","channel":"room"}"#[..],
            br#"{"fk":"subscribe"}"#,
            br#"{"fk":"subscribe","channel":""}"#,
            br#"{"fk":"#,
        ] {
            assert!(matches!(subscribe_request(&on, bad, false), Some(Err(_))), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn only_a_2xx_joins_a_subscribe() {
        let told = |answer: Answered| match answer {
            Answered::Deliver(Some(message)) => {
                serde_json::from_slice::<serde_json::Value>(message.payload().unwrap().data()).unwrap()
            }
            other => panic!("{other:?}"),
        };
        let (answer, joins) = subscribe_answered(b"room", &response(204, &[], ""));
        assert_eq!(
            (told(answer)["type"].as_str(), joins.map(|c| c.as_str().to_owned())),
            (Some("subscribed"), Some("room".into()))
        );
        for (result, code) in
            [(response(403, &[], "no"), 403), (response(500, &[], ""), 500), (failed(true), 504), (failed(false), 503)]
        {
            let (answer, joins) = subscribe_answered(b"room", &result);
            let answer = told(answer);
            assert_eq!(
                (answer["type"].as_str(), answer["code"].as_u64(), joins),
                (Some("subscribe_refused"), Some(code), None)
            );
        }
    }
}
