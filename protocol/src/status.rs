//! STATUS on a gateway link: every heartbeat interval a gateway tells
//! each router how it is, for the operator's page: its sessions, each
//! backend's connections and health, and its running counts (the router
//! makes rates of them). Session area empty; data: this as JSON.
//! DRAIN, the other way, asks a gateway to drain as on SIGTERM.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Frame, FrameKind};

/// Backends listed in one report at most.
pub const MAX_BACKENDS: usize = 256;

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
        Ok(status)
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
        let many = GatewayStatus { backends: vec![backend; MAX_BACKENDS + 1], ..Default::default() };
        assert!(GatewayStatus::from_frame(&many.to_frame()).is_err());
    }
}
