//! fooking's binary protocol. A connection whose first frame is a gateway's
//! AUTH is a gateway link; any other connection is a backend sending
//! commands, one or many per connection, as fooking's `RouterClient` does.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use crate::cmd::Command;
use crate::hub::{Hub, LinkId};
use crate::protocol::handover::{resume_generation, GatewayId};
use crate::protocol::{token_matches, Frame, FrameCodec, FrameError, FrameKind, Hello};
use crate::server::arrival::Ticket;

/// A connection that sends nothing for this long is closed.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued for one gateway before pushes to it wait.
const GATEWAY_QUEUE: usize = 1024;

type Conn = Framed<TcpStream, FrameCodec>;

/// `ticket` is the connection's place in line, taken when it was accepted;
/// with a `token`, the first frame must be an AUTH (a [`Hello`]) carrying it.
pub async fn serve_connection(
    stream: TcpStream,
    hub: Arc<Hub>,
    max_data: usize,
    token: Option<Arc<str>>,
    ticket: Ticket,
) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut conn = Framed::new(stream, FrameCodec::new(max_data));
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
    if let Some(expected) = &token {
        let given = hello.as_ref().map(Hello::token).unwrap_or_default();
        if !token_matches(expected.as_bytes(), given) {
            hub.metrics.refused_unauthenticated.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return tracing::warn!(%peer, "closing connection: missing or wrong token (send AUTH with it first)");
        }
    }
    match hello {
        Some(Hello::Gateway { server_id, worker_id, .. }) => {
            serve_gateway(conn, hub, &peer, server_id, worker_id).await
        }
        Some(Hello::Backend { .. }) => serve_backend(conn, hub, &peer, None, ticket).await,
        None => serve_backend(conn, hub, &peer, Some(first), ticket).await,
    }
}

fn log_frame_error(hub: &Hub, peer: &str, err: &FrameError) {
    hub.metrics.bad_frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(%peer, %err, "closing connection: bad frame");
}

async fn serve_backend(mut conn: Conn, hub: Arc<Hub>, peer: &str, mut next: Option<Frame>, ticket: Ticket) {
    let mut ticket = Some(ticket);
    loop {
        let frame = match next.take() {
            Some(frame) => frame,
            None => match conn.next().await {
                None => return,
                Some(Err(err)) => return log_frame_error(&hub, peer, &err),
                Some(Ok(frame)) => frame,
            },
        };
        let command = match Command::from_frame(frame) {
            Ok(command) => command,
            Err(err) => {
                hub.metrics.bad_frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return tracing::warn!(%peer, %err, "closing backend connection: bad command");
            }
        };
        if let Some(ticket) = &ticket {
            ticket.wait_turn().await;
        }
        let applied = command.apply(&hub).await;
        if let Some(ticket) = ticket.take() {
            ticket.done();
        }
        match applied {
            Ok(reply) => {
                if let Some(frame) = reply.to_frame() {
                    if conn.send(frame).await.is_err() {
                        return;
                    }
                }
            }
            // fooking's protocol has no error reply: log it, keep serving.
            Err(err) => tracing::error!(%peer, %err, "command failed"),
        }
    }
}

async fn serve_gateway(conn: Conn, hub: Arc<Hub>, peer: &str, server_id: i32, worker_id: i32) {
    let (mut sink, mut stream) = conn.split();
    let (tx, mut rx) = mpsc::channel::<Frame>(GATEWAY_QUEUE);
    let link = hub.attach_gateway(server_id, worker_id, tx);
    tracing::info!(%peer, server_id, worker_id, "gateway linked");

    let writer = async {
        while let Some(frame) = rx.recv().await {
            if let Err(err) = sink.send(frame).await {
                tracing::warn!(%peer, %err, "gateway link write failed");
                return;
            }
        }
    };
    let reader = async {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(frame) => {
                    if let Err(reason) = gateway_frame(&hub, link, frame).await {
                        return tracing::warn!(%peer, reason, "closing gateway link");
                    }
                }
                Err(err) => return log_frame_error(&hub, peer, &err),
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    hub.detach_gateway(link);
    tracing::info!(%peer, server_id, worker_id, "gateway unlinked");
}

/// A gateway reports its sessions (CONN, CLOSE) and, on (re)link or when
/// asked to resync, what they belong to (CH_ADD, BIND), which the store
/// takes again: that is how a Redis that lost its data is refilled. The
/// frames of a session's move between gateways are passed on (see
/// `protocol::handover`).
async fn gateway_frame(hub: &Hub, link: LinkId, frame: Frame) -> Result<(), String> {
    let ids = frame.session_ids().map_err(|e| e.to_string())?;
    let store = hub.store();
    let stored = match frame.kind() {
        Some(FrameKind::Conn) => {
            hub.sessions_connected(link, &ids);
            match hub.gateway_key(link) {
                Some(gateway) => store.gateway_sessions(&gateway, &ids, true).await,
                None => Ok(()),
            }
        }
        Some(FrameKind::Close) => {
            let closed = hub.sessions_closed(link, &ids).await;
            match hub.gateway_key(link) {
                Some(gateway) => closed.and(store.gateway_sessions(&gateway, &ids, false).await),
                None => closed,
            }
        }
        Some(FrameKind::ChAdd) => {
            let channel = std::str::from_utf8(&frame.data).map_err(|_| "a channel name is UTF-8".to_owned())?;
            store.join(channel, &ids).await.map(drop)
        }
        Some(FrameKind::Bind) => {
            let user = std::str::from_utf8(&frame.data).map_err(|_| "a user id is UTF-8".to_owned())?;
            let [id] = ids[..] else { return Err("BIND names one session".into()) };
            store.bind_user(&id, user).await
        }
        Some(kind @ (FrameKind::Resume | FrameKind::Moving | FrameKind::Handover | FrameKind::ResumeRefused)) => {
            let [id] = ids[..] else { return Err(format!("{kind:?} names one session")) };
            match kind {
                FrameKind::Resume => {
                    let generation = resume_generation(&frame.data).map_err(|e| e.to_string())?;
                    hub.resume(link, id, generation).await;
                }
                FrameKind::Moving => {
                    let (to, _) = GatewayId::split(&frame.data).map_err(|e| e.to_string())?;
                    hub.moving(link, id, to).await;
                }
                _ => {
                    let (to, _) = GatewayId::split(&frame.data).map_err(|e| e.to_string())?;
                    hub.forward(to, frame).await;
                }
            }
            Ok(())
        }
        _ => return Err(format!("unexpected frame type {} from a gateway", frame.kind)),
    };
    if let Err(err) = stored {
        tracing::error!(%err, "could not store what a gateway reported");
    }
    Ok(())
}
