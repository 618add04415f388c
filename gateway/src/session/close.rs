//! Why the gateway closes a client: the close code it sends, the reason
//! text, and the label it is counted under in the metrics.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The router kicked the session.
    Kicked,
    /// Its pushes queued past the outbound limits.
    SlowConsumer,
    /// It sent messages faster than the per-connection rate.
    RateLimited,
    /// A message over the size limit.
    TooBig,
    /// It broke the WebSocket protocol.
    ProtocolError,
    /// The connect event could not be delivered.
    BackendUnavailable,
    /// Nothing heard from it for the idle timeout.
    IdleTimeout,
    /// The gateway is draining before exit.
    ShuttingDown,
    /// Already at the connection limit.
    ServerFull,
}

impl CloseReason {
    pub const ALL: [CloseReason; 9] = [
        CloseReason::Kicked,
        CloseReason::SlowConsumer,
        CloseReason::RateLimited,
        CloseReason::TooBig,
        CloseReason::ProtocolError,
        CloseReason::BackendUnavailable,
        CloseReason::IdleTimeout,
        CloseReason::ShuttingDown,
        CloseReason::ServerFull,
    ];

    pub fn code(self) -> u16 {
        match self {
            CloseReason::Kicked => 4000,
            CloseReason::SlowConsumer | CloseReason::RateLimited => 1008,
            CloseReason::TooBig => 1009,
            CloseReason::ProtocolError => 1002,
            CloseReason::BackendUnavailable => 1011,
            CloseReason::IdleTimeout | CloseReason::ShuttingDown => 1001,
            CloseReason::ServerFull => 1013,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            CloseReason::Kicked => "kicked",
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::RateLimited => "message rate exceeded",
            CloseReason::TooBig => "message too big",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::BackendUnavailable => "backend unavailable",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::ShuttingDown => "server shutting down",
            CloseReason::ServerFull => "server full, try again later",
        }
    }

    /// The metric label: the text with underscores.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Kicked => "kicked",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::RateLimited => "rate_limited",
            CloseReason::TooBig => "too_big",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::BackendUnavailable => "backend_unavailable",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::ShuttingDown => "shutting_down",
            CloseReason::ServerFull => "server_full",
        }
    }

    pub fn index(self) -> usize {
        CloseReason::ALL.iter().position(|r| *r == self).expect("listed")
    }
}
