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
    /// A compressed message inflated past its budget: more than
    /// `--max-inflate-ratio` times its size, or faster than `--max-inflate-rate`.
    InflateBudget,
    /// It broke the WebSocket protocol.
    ProtocolError,
    /// Text that is not UTF-8, or a compressed message that does not inflate.
    InvalidPayload,
    /// The connect event could not be delivered.
    BackendUnavailable,
    /// Nothing heard from it for the idle timeout.
    IdleTimeout,
    /// The gateway is draining before exit.
    ShuttingDown,
    /// Already at the connection limit.
    ServerFull,
    /// A resume token that is malformed or not signed by this cluster.
    ResumeInvalid,
    /// A resume token for a session that has ended (or never was).
    ResumeExpired,
    /// A resume token used already: the session has a newer one.
    ResumeReused,
    /// The client missed messages the gateway no longer keeps.
    ResumeGap,
    /// The hand-over between gateways failed on the way.
    ResumeFailed,
    /// Another connection resumed this session.
    ResumedElsewhere,
    /// Offline, its buffered pushes passed the resume buffer's bounds.
    ResumeBufferFull,
    /// Offline for the whole grace period.
    GraceExpired,
}

impl CloseReason {
    pub const ALL: [CloseReason; 19] = [
        CloseReason::Kicked,
        CloseReason::SlowConsumer,
        CloseReason::RateLimited,
        CloseReason::TooBig,
        CloseReason::InflateBudget,
        CloseReason::ProtocolError,
        CloseReason::InvalidPayload,
        CloseReason::BackendUnavailable,
        CloseReason::IdleTimeout,
        CloseReason::ShuttingDown,
        CloseReason::ServerFull,
        CloseReason::ResumeInvalid,
        CloseReason::ResumeExpired,
        CloseReason::ResumeReused,
        CloseReason::ResumeGap,
        CloseReason::ResumeFailed,
        CloseReason::ResumedElsewhere,
        CloseReason::ResumeBufferFull,
        CloseReason::GraceExpired,
    ];

    pub fn code(self) -> u16 {
        match self {
            CloseReason::Kicked => 4000,
            CloseReason::SlowConsumer
            | CloseReason::RateLimited
            | CloseReason::InflateBudget
            | CloseReason::ResumeBufferFull => 1008,
            CloseReason::TooBig => 1009,
            CloseReason::ProtocolError => 1002,
            CloseReason::InvalidPayload => 1007,
            CloseReason::BackendUnavailable => 1011,
            CloseReason::IdleTimeout | CloseReason::ShuttingDown | CloseReason::GraceExpired => 1001,
            CloseReason::ServerFull => 1013,
            CloseReason::ResumeInvalid => 4100,
            CloseReason::ResumeExpired => 4101,
            CloseReason::ResumeReused => 4102,
            CloseReason::ResumeGap => 4103,
            CloseReason::ResumeFailed => 4104,
            CloseReason::ResumedElsewhere => 4105,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            CloseReason::Kicked => "kicked",
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::RateLimited => "message rate exceeded",
            CloseReason::TooBig => "message too big",
            CloseReason::InflateBudget => "compressed message inflates past its budget",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::InvalidPayload => "invalid payload data",
            CloseReason::BackendUnavailable => "backend unavailable",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::ShuttingDown => "server shutting down",
            CloseReason::ServerFull => "server full, try again later",
            CloseReason::ResumeInvalid => "resume token invalid",
            CloseReason::ResumeExpired => "session expired",
            CloseReason::ResumeReused => "resume token already used",
            CloseReason::ResumeGap => "missed messages are no longer kept",
            CloseReason::ResumeFailed => "resume failed, try again",
            CloseReason::ResumedElsewhere => "session resumed on another connection",
            CloseReason::ResumeBufferFull => "resume buffer full",
            CloseReason::GraceExpired => "resume grace period over",
        }
    }

    /// The metric label: the text with underscores.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Kicked => "kicked",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::RateLimited => "rate_limited",
            CloseReason::TooBig => "too_big",
            CloseReason::InflateBudget => "inflate_budget",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::InvalidPayload => "invalid_payload",
            CloseReason::BackendUnavailable => "backend_unavailable",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::ShuttingDown => "shutting_down",
            CloseReason::ServerFull => "server_full",
            CloseReason::ResumeInvalid => "resume_invalid",
            CloseReason::ResumeExpired => "resume_expired",
            CloseReason::ResumeReused => "resume_reused",
            CloseReason::ResumeGap => "resume_gap",
            CloseReason::ResumeFailed => "resume_failed",
            CloseReason::ResumedElsewhere => "resumed_elsewhere",
            CloseReason::ResumeBufferFull => "resume_buffer_full",
            CloseReason::GraceExpired => "grace_expired",
        }
    }

    pub fn index(self) -> usize {
        CloseReason::ALL.iter().position(|r| *r == self).expect("listed")
    }
}
