//! Resuming a session: claiming it for a new connection, from this
//! gateway's registry or, through the routers, from another gateway; and
//! giving one up to another gateway. The routers' half is
//! `router::hub::moves`.
//!
//! A move between gateways keeps every push exactly once and in order.
//! The new gateway registers the session with an mailbox that takes pushes
//! from no router yet. The holding gateway, once its session task has
//! let go, tells every router the session is MOVING; each router, between
//! two pushes, starts routing it to the new gateway and says MOVED to
//! both. The old gateway then takes nothing more from that router, the new
//! one everything after; once every router has said so, the old gateway
//! sends what it holds, which goes in front of what the new one took.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protocol::handover::{GatewayId, Refusal, ResumeAsk, SessionState};
use protocol::{encode_ids, Frame, FrameKind, SessionId};
use tokio::sync::oneshot;

use crate::base::message::{Message, Payload};
use crate::metrics::Count;
use crate::resume::replay::{outgoing, ReplayLog, ResumeState, TakeRequest};
use crate::resume::token::Token;
use crate::session::mailbox::Mailbox;
use crate::session::registry::Membership;
use crate::session::Host;
use crate::upstream::fastcgi::ParamBlock;
use crate::Gateway;

/// How long a session may take to let go: its pending events go to the
/// backend first, so the backend sees offline before online.
const LET_GO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the routers get to say MOVED. A router that is up says it
/// behind the pushes it sent before; one that is stuck is found dead by
/// its heartbeats within three intervals, and its link drops. This is the
/// last resort beyond that.
fn moved_timeout(gateway: &Gateway) -> Duration {
    let settings = gateway.links().settings();
    settings.beat().dead_after() + settings.heartbeat
}

/// How long a resume waits for another gateway's hand-over.
fn handover_timeout(gateway: &Gateway) -> Duration {
    LET_GO_TIMEOUT + moved_timeout(gateway) + Duration::from_secs(5)
}

/// The session `token` names, for a new connection: its mailbox and what
/// it carries.
pub async fn claim(gateway: &Arc<Gateway>, token: Token) -> Result<(Arc<Mailbox>, ResumeState), Refusal> {
    match gateway.registry().mailbox(&token.session) {
        Some(mailbox) => {
            let carried = let_go(&mailbox, token.generation).await?;
            Ok((mailbox, carried))
        }
        None => claim_from_cluster(gateway, token).await,
    }
}

/// Asks the session task behind `mailbox` to let go of its session.
async fn let_go(mailbox: &Mailbox, generation: u32) -> Result<ResumeState, Refusal> {
    let (reply, answer) = oneshot::channel();
    mailbox.request_take(TakeRequest { generation, reply });
    match tokio::time::timeout(LET_GO_TIMEOUT, answer).await {
        Ok(Ok(answer)) => answer,
        _ => Err(Refusal::Failed),
    }
}

async fn claim_from_cluster(gateway: &Arc<Gateway>, token: Token) -> Result<(Arc<Mailbox>, ResumeState), Refusal> {
    let links = &gateway.links();
    let Some(via) = (0..crate::session::mailbox::MAX_ROUTERS).find(|link| links.linked_mask() & (1 << link) != 0)
    else {
        tracing::info!(session = %token.session, "resume: no router linked to ask");
        return Err(Refusal::Failed);
    };
    let id = token.session;
    let mailbox = Arc::new(Mailbox::new(gateway.session_settings().mailbox.clone()));
    mailbox.park(true);
    mailbox.accept_only(0);
    gateway.registry().insert(id, mailbox.clone());
    let answer = links.await_handover(id);
    let proof = Bytes::from(gateway.resume_keys().proof(token));
    let ask =
        Frame::new(FrameKind::Resume, encode_ids(&[id]), ResumeAsk { generation: token.generation, proof }.encode());
    links.send_to(via, ask);
    let state = match tokio::time::timeout(handover_timeout(gateway), answer).await {
        Ok(Ok(Ok(state))) => state,
        refused => {
            links.stop_waiting(&id);
            let counts = gateway.registry().remove(&id);
            // A router may route it here already: it ends here then, and
            // a router forgets it only if no other gateway holds it.
            links.closed(id, counts);
            return Err(match refused {
                Ok(Ok(Err(refusal))) => refusal,
                _ => Refusal::Failed,
            });
        }
    };
    let messages = state.queued.into_iter().map(|m| Message::new(Payload::new(m.data), m.binary));
    mailbox.prepend(messages);
    links.channels_changed(
        gateway
            .registry()
            .set_membership(id, Membership { channels: state.channels, user: state.user, named: Vec::new() }),
    );
    links.connected(id);
    // Takes pushes from each router from its MOVED on (or from a relink,
    // whose report routes the session here); from all, in the end.
    let budget = gateway.session_settings().resume_budget().clone();
    let written = ReplayLog::from_handover(state.generation, state.next_seq, state.written, budget);
    let (all_moved, gateway) = (mailbox.clone(), gateway.clone());
    tokio::spawn(async move {
        let every_linked = |accepted| {
            let linked = gateway.links().linked_mask();
            accepted & linked == linked
        };
        gateway.links().until(moved_timeout(&gateway), || every_linked(all_moved.accepted())).await;
        all_moved.accept_only(u64::MAX);
    });
    let meta = ParamBlock::decode(&state.meta).unwrap_or_default();
    Ok((mailbox, ResumeState { meta, replay_log: written }))
}

/// At the holding gateway: hands `session` to gateway `to`, which asked
/// through router link `link`, if the ask proves a client holds the
/// session's current token.
pub async fn give(gateway: Arc<Gateway>, link: usize, session: SessionId, to: GatewayId, ask: ResumeAsk) {
    let links = &gateway.links();
    let refuse =
        |refusal: Refusal| Frame::new(FrameKind::ResumeRefused, encode_ids(&[session]), to.address(&[refusal as u8]));
    let generation = ask.generation;
    if !gateway.resume_keys().proves(Token { session, generation }, &ask.proof) {
        tracing::warn!(%session, %to, "resume without a valid proof refused (do the gateways share --resume-secret?)");
        return links.send_to(link, refuse(Refusal::Failed));
    }
    let Some(mailbox) = gateway.registry().mailbox(&session) else {
        return links.send_to(link, refuse(Refusal::Expired));
    };
    let carried = match let_go(&mailbox, generation).await {
        Ok(carried) => carried,
        Err(refusal) => return links.send_to(link, refuse(refusal)),
    };
    let linked_before = links.linked_mask();
    links.send_to_all(Frame::new(FrameKind::Moving, encode_ids(&[session]), to.address(&[])));
    // Every router still linked says MOVED behind its last push to us; one
    // whose link dropped meanwhile sends us nothing more.
    let wait = moved_timeout(&gateway);
    if !links.until(wait, || mailbox.accepted() & linked_before & links.linked_mask() == 0).await {
        tracing::warn!(%session, "not every router confirmed the move in {wait:?}");
    }
    let Membership { channels, user, .. } = gateway.registry().membership_of(&session);
    links.channels_changed(gateway.registry().remove(&session));
    let queued: Vec<_> = mailbox.drain().iter().map(outgoing).collect();
    let mut state = SessionState {
        generation: carried.replay_log.generation,
        next_seq: carried.replay_log.next_seq,
        written: carried.replay_log.recent().map(outgoing).collect(),
        queued,
        meta: Bytes::copy_from_slice(carried.meta.encoded()),
        channels,
        user,
    };
    // A router takes frames up to its --max-frame: the messages already
    // written go first, then the session cannot move.
    let room = links.router_max_frame().saturating_sub(GatewayId::LEN);
    let mut encoded = state.encode();
    while encoded.len() > room && !state.written.is_empty() {
        state.written.remove(0);
        encoded = state.encode();
    }
    if encoded.len() > room {
        tracing::error!(%session, bytes = encoded.len(), "session too large to move; it ends");
        links.send_to(link, refuse(Refusal::Failed));
        return crate::session::event::send_close_events(&*gateway, vec![session]).await;
    }
    gateway.metrics().count(Count::MovedOut);
    tracing::debug!(%session, %to, "session handed over");
    links.send_to(link, Frame::new(FrameKind::Handover, encode_ids(&[session]), to.address(&encoded)));
}
