//! fooking's binary protocol. A connection whose first frame is a gateway's
//! AUTH is a gateway link; any other connection is a backend sending
//! commands, one or many per connection, as fooking's `RouterClient` does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use protocol::cmd::{error_frame, Command};

use crate::cmd::Apply;
use crate::hub::Hub;
use crate::metrics::Count;
use crate::outbound::{CutOff, Outbound};
use crate::server::arrival::Ticket;
use protocol::handover::GatewayId;
use protocol::{token_matches, Due, Frame, FrameCodec, FrameError, FrameKind, Heartbeat, Hello, Liveness, ToRouter};

/// A connection that sends nothing for this long is closed.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// A backend's kept connection that sends nothing for this long is closed
/// (our client opens a new one when it needs it).
const BACKEND_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

type Conn = Framed<TcpStream, FrameCodec>;

/// How this router treats its gateway links, and the largest frame it takes.
#[derive(Clone, Copy, Debug)]
pub struct GatewayLinkSettings {
    pub heartbeat: Duration,
    pub max_frame: usize,
    pub queue_bytes: usize,
    pub stall: Duration,
}

/// The secrets a connection must present in its AUTH, by who it says it is.
#[derive(Clone, Default)]
pub struct Credentials {
    pub backend: Option<Arc<str>>,
    pub gateway: Option<Arc<str>>,
}

/// `ticket` is the connection's place in line, taken when it was accepted.
/// A gateway's AUTH must carry the gateways' token, a backend's the
/// backends' (when the router has them); a backend with a token to present
/// must send AUTH first.
pub async fn serve_connection(
    stream: TcpStream,
    hub: Arc<Hub>,
    settings: GatewayLinkSettings,
    credentials: Credentials,
    ticket: Ticket,
) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    // With a backends' token every connection opens with a small AUTH, so
    // until then it gets no room for a large frame.
    let codec = match credentials.backend {
        Some(_) => FrameCodec::before_auth(),
        None => FrameCodec::new(settings.max_frame),
    };
    let mut conn = Framed::new(stream, codec);
    let first = match tokio::time::timeout(FIRST_FRAME_TIMEOUT, conn.next()).await {
        Err(_) => return tracing::info!(%peer, "closing connection: no frame within {FIRST_FRAME_TIMEOUT:?}"),
        Ok(None) => return,
        Ok(Some(Err(err))) => return log_frame_error(&hub, &peer, &err),
        Ok(Some(Ok(frame))) => frame,
    };
    let hello = match first.kind() {
        Some(FrameKind::Auth) => match Hello::from_frame(&first) {
            Ok(hello) => Some(hello),
            Err(reason) => return tracing::warn!(%peer, reason, "closing connection: bad AUTH"),
        },
        _ => None,
    };
    let (expected, role) = match hello {
        Some(Hello::Gateway { .. }) => (&credentials.gateway, "gateway"),
        _ => (&credentials.backend, "backend"),
    };
    if let Some(expected) = expected {
        let given = hello.as_ref().map(Hello::token).unwrap_or_default();
        if !token_matches(expected.as_bytes(), given) {
            hub.metrics.count(Count::RefusedUnauthenticated);
            return tracing::warn!(%peer, role, "closing connection: missing or wrong token (send AUTH with it first)");
        }
    }
    conn.codec_mut().authenticated(settings.max_frame);
    match hello {
        Some(Hello::Gateway { server_id, worker_id, .. }) => {
            // A link is no backend's call: it holds no place in line.
            drop(ticket);
            serve_gateway(conn, hub, &peer, GatewayId { server_id, worker_id }, settings).await
        }
        Some(Hello::Backend { replies, .. }) => serve_backend(conn, hub, &peer, None, ticket, replies).await,
        None => serve_backend(conn, hub, &peer, Some(first), ticket, false).await,
    }
}

fn log_frame_error(hub: &Hub, peer: &str, err: &FrameError) {
    hub.metrics.count(Count::BadFrames);
    tracing::warn!(%peer, %err, "closing connection: bad frame");
}

/// A backend's commands, applied in order. fooking's protocol answers only
/// the commands that have a reply frame; a backend that asked for
/// `replies` gets one frame per command: its reply, OK or ERROR.
async fn serve_backend(
    mut conn: Conn,
    hub: Arc<Hub>,
    peer: &str,
    mut next: Option<Frame>,
    ticket: Ticket,
    replies: bool,
) {
    let mut ticket = Some(ticket);
    loop {
        let frame = match next.take() {
            Some(frame) => frame,
            None => match tokio::time::timeout(BACKEND_IDLE_TIMEOUT, conn.next()).await {
                Err(_) | Ok(None) => return,
                Ok(Some(Err(err))) => return log_frame_error(&hub, peer, &err),
                Ok(Some(Ok(frame))) => frame,
            },
        };
        let refusal = match Command::from_frame(frame) {
            Err(err) => {
                hub.metrics.count(Count::BadFrames);
                Err(("bad_request", err.to_string()))
            }
            Ok(command) => {
                let (payload, limit) = (command.largest_payload(), hub.push_limit());
                if payload > limit {
                    hub.metrics.count(Count::PushesTooLarge);
                    Err(("too_large", format!("a payload of {payload} bytes is over the frame limit of {limit}")))
                } else {
                    Ok(command)
                }
            }
        };
        let command = match refusal {
            Ok(command) => command,
            Err((code, message)) if replies => {
                if conn.send(error_frame(code, &message)).await.is_err() {
                    return;
                }
                continue;
            }
            Err((_, message)) => return tracing::warn!(%peer, message, "closing backend connection: command refused"),
        };
        if let Some(ticket) = &ticket {
            ticket.wait_turn().await;
        }
        let has_reply = command.has_reply();
        let applied = command.apply(&hub).await;
        if let Some(ticket) = ticket.take() {
            ticket.done();
        }
        let answer = match applied {
            Ok(reply) => reply.to_frame().or_else(|| replies.then(|| reply.ok_frame())),
            Err(err) => {
                tracing::error!(%peer, %err, "command failed");
                if replies {
                    Some(error_frame("unavailable", &err.to_string()))
                } else if has_reply {
                    // fooking's protocol has no error reply: the caller's
                    // read ends at once instead of waiting for one.
                    return;
                } else {
                    None
                }
            }
        };
        if let Some(frame) = answer {
            if conn.send(frame).await.is_err() {
                return;
            }
        }
    }
}

/// Why a gateway link ended.
enum LinkEnd {
    CutOff(CutOff),
    Closed(String),
}

/// A gateway's link: pushes go out through its own queue, written with a
/// deadline; frames from it are applied as they come. Once the gateway
/// sends heartbeats, the router answers with its own, and a gateway
/// silent for three of its intervals is cut off.
async fn serve_gateway(conn: Conn, hub: Arc<Hub>, peer: &str, id: GatewayId, settings: GatewayLinkSettings) {
    let (mut sink, mut stream) = conn.split();
    let outbound = Arc::new(Outbound::new(settings.queue_bytes));
    let link = hub.attach_gateway(id, outbound.clone(), Instant::now());
    tracing::info!(%peer, gateway = %id, "gateway linked");
    let own_beat = Heartbeat { interval: settings.heartbeat, max_frame: settings.max_frame };
    let mut live = Liveness::answering(own_beat, Instant::now());

    let writer = write_link(&mut sink, &outbound, settings.stall);
    let reader = async {
        loop {
            // No word from the gateway yet: nothing to judge or answer.
            let deadline = live.next_deadline().unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            let next = tokio::select! {
                next = stream.next() => next,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    match live.on_timeout(Instant::now()) {
                        Some(Due::Beat) => {
                            outbound.push(vec![own_beat.to_frame()]);
                        }
                        Some(Due::Silent(_)) => {
                            outbound.cut_off(CutOff::Silent);
                            return LinkEnd::CutOff(CutOff::Silent);
                        }
                        None => {}
                    }
                    continue;
                }
            };
            let frame = match next {
                None => return LinkEnd::Closed("the gateway closed the link".into()),
                Some(Err(FrameError::Io(err))) => return LinkEnd::Closed(err.to_string()),
                Some(Err(err)) => {
                    log_frame_error(&hub, peer, &err);
                    return LinkEnd::Closed(err.to_string());
                }
                Some(Ok(frame)) => match ToRouter::from_frame(frame) {
                    Ok(frame) => frame,
                    Err(reason) => return LinkEnd::Closed(reason),
                },
            };
            let beat = match frame {
                ToRouter::Heartbeat(beat) => Some(beat),
                _ => None,
            };
            if live.on_frame(beat, Instant::now()) {
                outbound.push(vec![own_beat.to_frame()]);
            }
            if let Some(beat) = beat {
                hub.gateway_takes(link, beat.max_frame);
                hub.gateway_heard(link, Instant::now());
            }
            crate::link::apply(&hub, link, frame).await;
        }
    };
    let end = tokio::select! {
        end = writer => end,
        end = reader => end,
    };
    hub.detach_gateway(link);
    match end {
        LinkEnd::CutOff(why) => {
            hub.metrics.count(why);
            hub.note_cut_off(&id.to_string(), why);
            tracing::warn!(%peer, gateway = %id, reason = why.label(), "gateway cut off: its link is closed");
        }
        LinkEnd::Closed(reason) => tracing::info!(%peer, gateway = %id, reason, "gateway unlinked"),
    }
}

/// Writes what is queued for a gateway, a batch at a time, each frame and
/// flush within `stall`: a gateway that stops reading is cut off.
async fn write_link(sink: &mut SplitSink<Conn, Frame>, outbound: &Outbound, stall: Duration) -> LinkEnd {
    loop {
        let batch = match outbound.take().await {
            Ok(batch) => batch,
            Err(why) => return LinkEnd::CutOff(why),
        };
        let write = async {
            for frame in batch {
                tokio::time::timeout(stall, sink.feed(frame)).await??;
            }
            Ok::<(), WriteError>(tokio::time::timeout(stall, sink.flush()).await??)
        };
        match write.await {
            Ok(()) => {}
            Err(WriteError::Frame(err)) => return LinkEnd::Closed(format!("write failed: {err}")),
            Err(WriteError::Stalled) => {
                outbound.cut_off(CutOff::Stalled);
                return LinkEnd::CutOff(CutOff::Stalled);
            }
        }
    }
}

enum WriteError {
    Frame(FrameError),
    Stalled,
}

impl From<FrameError> for WriteError {
    fn from(err: FrameError) -> WriteError {
        WriteError::Frame(err)
    }
}

impl From<tokio::time::error::Elapsed> for WriteError {
    fn from(_: tokio::time::error::Elapsed) -> WriteError {
        WriteError::Stalled
    }
}
