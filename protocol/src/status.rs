//! STATUS on a gateway link: every heartbeat interval a gateway tells
//! each router how it is, for the operator's page: its sessions, each
//! backend's connections and health, and its running counts (the router
//! makes rates of them). Session area empty; data: this as JSON.
//! DRAIN, the other way, asks a gateway to drain as on SIGTERM; DESCRIBE
//! asks the gateway that holds a session how it is, and DESCRIBED answers.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Frame, FrameKind, SessionId};

/// Backends listed in one report at most.
pub const MAX_BACKENDS: usize = 256;
/// Longest pool name and backend address in a report, in bytes.
pub const MAX_NAME: usize = 255;
/// Largest DESCRIBED, in bytes: a session's meta is within its params.
pub const MAX_DESCRIPTION: usize = 64 << 10;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub sessions: u64,
    pub backends: Vec<BackendStatus>,
    /// Counts since the gateway started.
    pub messages_in: u64,
    pub messages_out: u64,
    pub backend_failures: u64,
    pub backend_timeouts: u64,
    pub event_retries: u64,
    pub events_given_up: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendStatus {
    pub pool: String,
    pub backend: String,
    /// Open connections to it.
    pub open: u64,
    /// Skipped for failing, for now.
    pub ejected: bool,
    /// Requests to it that failed since the gateway started, and those of them that timed out.
    #[serde(default)]
    pub failures: u64,
    #[serde(default)]
    pub timeouts: u64,
}

impl GatewayStatus {
    pub fn to_frame(&self) -> Frame {
        let json = serde_json::to_vec(self).expect("a status serializes");
        Frame::new(FrameKind::Status, Bytes::new(), Bytes::from(json))
    }

    pub fn from_frame(frame: &Frame) -> Result<GatewayStatus, String> {
        let status: GatewayStatus =
            serde_json::from_slice(&frame.data).map_err(|err| format!("a STATUS that is not a status: {err}"))?;
        if status.backends.len() > MAX_BACKENDS {
            return Err(format!("a STATUS with over {MAX_BACKENDS} backends"));
        }
        if status.backends.iter().any(|b| b.pool.len() > MAX_NAME || b.backend.len() > MAX_NAME) {
            return Err(format!("a STATUS naming a pool or backend in over {MAX_NAME} bytes"));
        }
        Ok(status)
    }
}

/// A session as the gateway that holds it sees it: how long it has been
/// there, the meta its backend set, and where its client is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// Seconds since it started, or came to this gateway.
    pub age_s: u64,
    /// `META_*` params, as the backend set them.
    pub meta: Vec<(String, String)>,
    /// The client's address, while it is connected.
    pub remote: Option<String>,
}

impl SessionDescription {
    pub fn to_frame(&self, session: &SessionId) -> Frame {
        let json = serde_json::to_vec(self).expect("a description serializes");
        Frame::new(FrameKind::Described, Bytes::copy_from_slice(session.as_bytes()), Bytes::from(json))
    }

    pub fn from_frame(frame: &Frame) -> Result<(SessionId, SessionDescription), String> {
        let session = SessionId::parse(&frame.sessions).map_err(|_| "DESCRIBED without one session id".to_owned())?;
        if frame.data.len() > MAX_DESCRIPTION {
            return Err(format!("a DESCRIBED over {MAX_DESCRIPTION} bytes"));
        }
        let description =
            serde_json::from_slice(&frame.data).map_err(|err| format!("DESCRIBED that is not one: {err}"))?;
        Ok((session, description))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_one() {
        let backend = BackendStatus {
            pool: "default".into(),
            backend: "127.0.0.1:9001".into(),
            open: 2,
            ejected: true,
            failures: 3,
            timeouts: 1,
        };
        let status =
            GatewayStatus { sessions: 3, backends: vec![backend.clone()], messages_in: 7, ..Default::default() };
        assert_eq!(GatewayStatus::from_frame(&status.to_frame()), Ok(status));
        let frame = |data: &'static [u8]| Frame::new(FrameKind::Status, Bytes::new(), Bytes::from_static(data));
        assert!(GatewayStatus::from_frame(&frame(b"{")).is_err());
        assert!(GatewayStatus::from_frame(&frame(b"[]")).is_err());
        let many = GatewayStatus { backends: vec![backend.clone(); MAX_BACKENDS + 1], ..Default::default() };
        assert!(GatewayStatus::from_frame(&many.to_frame()).is_err());
        let long = BackendStatus { backend: "b".repeat(MAX_NAME + 1), ..backend };
        let long = GatewayStatus { backends: vec![long], ..Default::default() };
        assert!(GatewayStatus::from_frame(&long.to_frame()).is_err(), "a name past its bound");
    }

    #[test]
    fn a_description_round_trips_with_its_session() {
        let id = SessionId::from_u64(5);
        let description = SessionDescription {
            age_s: 9,
            meta: vec![("META_USER".into(), "ann".into())],
            remote: Some("10.0.0.1:5".into()),
        };
        assert_eq!(SessionDescription::from_frame(&description.to_frame(&id)), Ok((id, description)));
        let bad = Frame::new(FrameKind::Described, Bytes::from_static(b"short"), Bytes::from_static(b"{}"));
        assert!(SessionDescription::from_frame(&bad).is_err());
        let huge =
            SessionDescription { meta: vec![("META_X".into(), "x".repeat(MAX_DESCRIPTION))], ..Default::default() };
        assert!(SessionDescription::from_frame(&huge.to_frame(&id)).is_err());
    }
}
