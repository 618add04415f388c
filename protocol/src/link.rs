//! The link's frames as each side reads them, parsed once: what a gateway
//! sends a router ([`ToRouter`]) and what a router sends a gateway
//! ([`ToGateway`]). Each side matches on these, never on raw frame types;
//! each frame's layout stays in its own module (`interest`, `sync`,
//! `kept`, ...) or, for those a backend sends too, in `cmd`.

use bytes::Bytes;

use super::cmd::{user_id, Channel, Command, Payload};
use super::handover::{GatewayId, ResumeAsk};
use super::status::{GatewayStatus, SessionDescription};
use super::{Frame, FrameKind, Heartbeat, Interest, KeptEnd, KeptPub, MemberJoin, Occupancy, SessionId, Sync};

/// A gateway to a router.
#[derive(Debug)]
pub enum ToRouter {
    Heartbeat(Heartbeat),
    Status(GatewayStatus),
    /// CONN: sessions that live on this gateway.
    Connected(Vec<SessionId>),
    /// CLOSE: sessions that ended.
    Closed(Vec<SessionId>),
    /// CH_SUB, CH_UNSUB: how many of the channel's members it holds.
    Interest(Interest),
    Sync(Sync),
    /// CH_ADD: sessions in a channel, as a relink or a resync reports them.
    Joined {
        sessions: Vec<SessionId>,
        channel: Channel,
    },
    /// MEMBER_JOIN: a client joined a presence channel as the member it named.
    MemberJoined(MemberJoin),
    /// CH_DEL: a client left a channel by itself (a Pusher unsubscribe).
    Left {
        sessions: Vec<SessionId>,
        channel: Channel,
    },
    /// PUBLISH_EXCEPT: a client's event, relayed to the channel's other
    /// members (a Pusher client event the gateway let through).
    Relay(crate::cmd::PublishExcept),
    /// BIND: a session's user, as a relink or a resync reports it.
    Bound {
        session: SessionId,
        user: String,
    },
    /// SESSIONS_AWAY, SESSIONS_BACK: clients gone and waited for, or back.
    Away {
        sessions: Vec<SessionId>,
        away: bool,
    },
    Described {
        session: SessionId,
        description: SessionDescription,
    },
    /// RESUME: a client asks this gateway for a session another holds.
    Resume {
        session: SessionId,
        ask: ResumeAsk,
    },
    /// MOVING: route the session to gateway `to` from now on.
    Moving {
        session: SessionId,
        to: GatewayId,
    },
    /// HANDOVER, RESUME_REFUSED: the holder's answer to a resume, for the
    /// router to pass on as it is.
    ResumeAnswer {
        session: SessionId,
        frame: Frame,
    },
}

/// A router to a gateway.
#[derive(Debug)]
pub enum ToGateway {
    Heartbeat(Heartbeat),
    /// RESYNC: report every membership again.
    Resync,
    Synced(Sync),
    /// SEND_MSG.
    Push {
        sessions: Vec<SessionId>,
        payload: Payload,
    },
    /// SEND_ALL.
    Broadcast(Payload),
    /// CH_PUB, PUBLISH_EXCEPT.
    Publish {
        channel: Channel,
        except: Vec<SessionId>,
        payload: Payload,
    },
    KeptPub(KeptPub),
    KeptEnd {
        sessions: Vec<SessionId>,
        end: KeptEnd,
    },
    /// CH_ADD, or KEPT_JOIN when the sessions wait for history.
    Joined {
        sessions: Vec<SessionId>,
        channel: Channel,
        awaiting_history: bool,
    },
    /// CH_DEL.
    Left {
        sessions: Vec<SessionId>,
        channel: Channel,
    },
    /// BIND.
    Bound {
        session: SessionId,
        user: String,
    },
    Kick(Vec<SessionId>),
    /// ORPHANED: a dead gateway's sessions, whose close events to send.
    Orphaned(Vec<SessionId>),
    Describe(SessionId),
    Drain,
    Occupancy(Occupancy),
    /// RESUME, MOVED, HANDOVER, RESUME_REFUSED: a session moving between
    /// gateways, addressed to gateway `to`; `rest` is the kind's own data.
    Move {
        kind: FrameKind,
        session: SessionId,
        to: GatewayId,
        rest: Bytes,
    },
}

fn ids(frame: &Frame) -> Result<Vec<SessionId>, String> {
    Ok(frame.session_ids().map_err(|e| e.to_string())?.collect())
}

/// The one session a frame of type `name` names.
fn one(frame: &Frame, name: &str) -> Result<SessionId, String> {
    SessionId::parse(&frame.sessions).map_err(|e| format!("{name} names one session: {e}"))
}

/// The channel a frame of type `name` carries as its data.
fn channel(frame: &Frame, name: &str) -> Result<Channel, String> {
    Channel::from_bytes(&frame.data).map_err(|e| format!("{name}: {e}"))
}

impl ToRouter {
    pub fn from_frame(frame: Frame) -> Result<ToRouter, String> {
        let kind = frame.kind().ok_or_else(|| format!("unexpected frame type {} from a gateway", frame.raw_kind))?;
        Ok(match kind {
            FrameKind::Heartbeat => ToRouter::Heartbeat(Heartbeat::from_frame(&frame)?),
            FrameKind::Status => ToRouter::Status(GatewayStatus::from_frame(&frame)?),
            FrameKind::Conn => ToRouter::Connected(ids(&frame)?),
            FrameKind::Close => ToRouter::Closed(ids(&frame)?),
            FrameKind::ChSub | FrameKind::ChUnsub => ToRouter::Interest(Interest::from_frame(&frame)?),
            FrameKind::Sync => ToRouter::Sync(Sync::from_frame(&frame)?),
            FrameKind::ChAdd => ToRouter::Joined { sessions: ids(&frame)?, channel: channel(&frame, "CH_ADD")? },
            FrameKind::MemberJoin => ToRouter::MemberJoined(MemberJoin::from_frame(&frame)?),
            FrameKind::ChDel => ToRouter::Left { sessions: ids(&frame)?, channel: channel(&frame, "CH_DEL")? },
            FrameKind::PublishExcept => match Command::from_frame(frame).map_err(|e| e.to_string())? {
                Command::PublishExcept(publish) => ToRouter::Relay(publish),
                _ => unreachable!("PUBLISH_EXCEPT parses as one"),
            },
            FrameKind::Bind => {
                let user = user_id(&frame.data).map_err(|err| format!("BIND: {err}"))?;
                ToRouter::Bound { session: one(&frame, "BIND")?, user }
            }
            FrameKind::SessionsAway | FrameKind::SessionsBack => {
                ToRouter::Away { sessions: ids(&frame)?, away: kind == FrameKind::SessionsAway }
            }
            FrameKind::Described => {
                let (session, description) = SessionDescription::from_frame(&frame)?;
                ToRouter::Described { session, description }
            }
            FrameKind::Resume => ToRouter::Resume {
                session: one(&frame, "RESUME")?,
                ask: ResumeAsk::decode(&frame.data).map_err(|e| e.to_string())?,
            },
            FrameKind::Moving => {
                let (to, _) = GatewayId::split(&frame.data).map_err(|e| e.to_string())?;
                ToRouter::Moving { session: one(&frame, "MOVING")?, to }
            }
            FrameKind::Handover | FrameKind::ResumeRefused => {
                ToRouter::ResumeAnswer { session: one(&frame, "a resume's answer")?, frame }
            }
            _ => return Err(format!("unexpected frame type {} from a gateway", frame.raw_kind)),
        })
    }
}

impl ToGateway {
    pub fn from_frame(frame: Frame) -> Result<ToGateway, String> {
        let kind = frame.kind().ok_or_else(|| format!("unexpected frame type {} from the router", frame.raw_kind))?;
        Ok(match kind {
            FrameKind::Heartbeat => ToGateway::Heartbeat(Heartbeat::from_frame(&frame)?),
            FrameKind::Resync => ToGateway::Resync,
            FrameKind::Synced => ToGateway::Synced(Sync::from_frame(&frame)?),
            FrameKind::SendMsg => {
                ToGateway::Push { sessions: ids(&frame)?, payload: Payload { data: frame.data, binary: frame.binary } }
            }
            FrameKind::SendAll => ToGateway::Broadcast(Payload { data: frame.data, binary: frame.binary }),
            FrameKind::ChPub | FrameKind::PublishExcept => match Command::from_frame(frame)
                .map_err(|e| e.to_string())?
            {
                Command::Publish(publish) => {
                    ToGateway::Publish { channel: publish.channel, except: Vec::new(), payload: publish.payload }
                }
                Command::PublishExcept(publish) => {
                    ToGateway::Publish { channel: publish.channel, except: publish.except, payload: publish.payload }
                }
                _ => unreachable!("CH_PUB and PUBLISH_EXCEPT parse as publishes"),
            },
            FrameKind::KeptPub => ToGateway::KeptPub(KeptPub::from_frame(&frame)?),
            FrameKind::KeptEnd => {
                let (sessions, end) = KeptEnd::from_frame(&frame)?;
                ToGateway::KeptEnd { sessions, end }
            }
            FrameKind::ChAdd | FrameKind::KeptJoin => ToGateway::Joined {
                sessions: ids(&frame)?,
                channel: channel(&frame, "CH_ADD")?,
                awaiting_history: kind == FrameKind::KeptJoin,
            },
            FrameKind::ChDel => ToGateway::Left { sessions: ids(&frame)?, channel: channel(&frame, "CH_DEL")? },
            FrameKind::Bind => ToGateway::Bound {
                session: one(&frame, "BIND")?,
                user: String::from_utf8_lossy(&frame.data).into_owned(),
            },
            FrameKind::Kick => ToGateway::Kick(ids(&frame)?),
            FrameKind::Orphaned => ToGateway::Orphaned(ids(&frame)?),
            FrameKind::Describe => ToGateway::Describe(one(&frame, "DESCRIBE")?),
            FrameKind::Drain => ToGateway::Drain,
            FrameKind::Occupancy => ToGateway::Occupancy(Occupancy::from_frame(&frame)?),
            FrameKind::Resume | FrameKind::Moved | FrameKind::Handover | FrameKind::ResumeRefused => {
                let (to, rest) = GatewayId::split(&frame.data).map_err(|e| e.to_string())?;
                ToGateway::Move { kind, session: one(&frame, "a move")?, to, rest }
            }
            _ => return Err(format!("unexpected frame type {} from the router", frame.raw_kind)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_reads_what_the_other_sends_and_refuses_the_rest() {
        let id = SessionId::from_u64(7);
        let ids = crate::encode_ids(&[id]);
        let join = Frame::new(FrameKind::KeptJoin, ids.clone(), Bytes::from_static(b"room"));
        let ToGateway::Joined { sessions, channel, awaiting_history: true } = ToGateway::from_frame(join).unwrap()
        else {
            panic!("a KEPT_JOIN is a join that waits for history");
        };
        assert_eq!((sessions, channel.as_str()), (vec![id], "room"));
        let away = Frame::new(FrameKind::SessionsBack, ids.clone(), Bytes::new());
        assert!(matches!(ToRouter::from_frame(away), Ok(ToRouter::Away { away: false, .. })));
        let bind = Frame::new(FrameKind::Bind, ids.clone(), Bytes::from_static(b"ann"));
        assert!(matches!(ToRouter::from_frame(bind), Ok(ToRouter::Bound { user, .. }) if user == "ann"));

        // A gateway sends no KEPT_PUB; a router sends no CONN; nor either a type it does not know.
        let kept = Frame::new(FrameKind::KeptPub, Bytes::new(), Bytes::from_static(b"\x00\x04room\x011x"));
        assert!(ToRouter::from_frame(kept.clone()).is_err() && ToGateway::from_frame(kept).is_ok());
        assert!(ToGateway::from_frame(Frame::new(FrameKind::Conn, ids.clone(), Bytes::new())).is_err());
        let unknown = Frame { raw_kind: 999, binary: false, sessions: Bytes::new(), data: Bytes::new() };
        assert!(ToRouter::from_frame(unknown.clone()).is_err() && ToGateway::from_frame(unknown).is_err());
        let two = crate::encode_ids(&[id, id]);
        assert!(ToRouter::from_frame(Frame::new(FrameKind::Bind, two, Bytes::from_static(b"ann"))).is_err());
    }
}
