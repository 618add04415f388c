//! Presence, announced: a `presence-` channel's members hear who joins,
//! leaves, goes away and comes back, as JSON text messages the router
//! publishes to the channel itself, in order with its other messages; a
//! session that joins gets the member list first. When a channel gets its
//! first member or loses its last, the router asks the gateway that holds
//! (or held) that session to tell its backend (OCCUPANCY). A Pusher app's
//! presence channel hears the same in Pusher's words.
//!
//! The store says what changed, atomically: of the routers that hear of
//! one change (a gateway reports to all of them), one announces it.

use bytes::Bytes;
use serde_json::{json, Value};

use protocol::cmd::{publish_frame, Channel, Member, Payload};
use protocol::pusher::{self, PresenceMember};
use protocol::{FrameKind, Occupancy, SessionId};

use crate::hub::{Hub, LinkId};
use crate::metrics::Count;
use crate::store::presence::is_presence;
use crate::store::StoreResult;

/// Members a joining session is told of at most, and the bytes of JSON
/// they take at most (never past the frame limit); the count is whole,
/// and the list says where the rest begins.
const LISTED_AT_JOIN: usize = 1000;
const LIST_BYTES_AT_JOIN: usize = 64 << 10;

/// Room a listing leaves in its frame for the rest of its message.
pub const LIST_ENVELOPE: usize = 1 << 10;

/// A member as kept: `{"user":..,"info":..}`.
fn member_json(user: &str, info: Option<&Value>) -> String {
    match info {
        Some(info) => json!({ "user": user, "info": info }),
        None => json!({ "user": user }),
    }
    .to_string()
}

/// A kept member as the API and the events give it.
pub fn member(session: SessionId, kept: &str, online: bool) -> Member {
    let kept: Value = serde_json::from_str(kept).unwrap_or_default();
    let user = kept.get("user").and_then(Value::as_str).unwrap_or(session.as_str()).to_owned();
    Member { session, user, info: kept.get("info").cloned(), online }
}

/// `{"fk":"presence","event":..,"channel":..,"session":..,"user":..,"info":..}`;
/// on a Pusher app's channel, Pusher's `member_added` and `member_removed`
/// (Pusher has no `offline` or `online`: `None`).
fn event(kind: &str, channel: &str, session: SessionId, kept: &str) -> Option<Bytes> {
    let Member { user, info, .. } = member(session, kept, true);
    if let Some((_, pusher_channel)) = pusher::split_fk_channel(channel) {
        return match kind {
            "join" => Some(pusher::member_added(pusher_channel, &PresenceMember { user_id: user, user_info: info })),
            "leave" => Some(pusher::member_removed(pusher_channel, &user)),
            _ => None,
        }
        .map(Bytes::from);
    }
    let mut event = json!({ "fk": "presence", "event": kind, "channel": channel, "session": session, "user": user });
    if let Some(info) = info {
        event["info"] = info;
    }
    Some(Bytes::from(event.to_string()))
}

/// What a joining session hears first: the members (a page of them).
fn snapshot(channel: &str, listed: Listing) -> Bytes {
    if let Some((_, pusher_channel)) = pusher::split_fk_channel(channel) {
        let members: Vec<PresenceMember> = listed
            .members
            .into_iter()
            .map(|member| PresenceMember { user_id: member.user, user_info: member.info })
            .collect();
        return Bytes::from(pusher::subscription_succeeded(pusher_channel, Some(&members)));
    }
    let mut snapshot = json!({ "fk": "presence", "event": "members", "channel": channel, "count": listed.count, "members": listed.members });
    if let Some(next) = listed.next {
        snapshot["next"] = json!(next);
    }
    Bytes::from(snapshot.to_string())
}

/// Who joining sessions are to the others: `user` and `info` as the
/// backend gave them, else each session's bound user, else its id.
pub struct Joining<'a> {
    pub user: Option<&'a str>,
    pub info: Option<&'a Value>,
}

/// Presence for sessions that joined `channel` (a no-op for other
/// channels): the new members get the member list, the others a `join`
/// event each; a first member fills the channel.
pub async fn joined(hub: &Hub, channel: &str, ids: &[SessionId], who: Joining<'_>) -> StoreResult<()> {
    if !is_presence(channel) || ids.is_empty() {
        return Ok(());
    }
    let users = match who.user {
        Some(_) => vec![None; ids.len()],
        None => hub.store().session_users(ids).await?,
    };
    let members: Vec<(SessionId, String)> = ids
        .iter()
        .zip(users)
        .map(|(id, bound)| {
            let user = who.user.map(str::to_owned).or(bound).unwrap_or_else(|| id.to_string());
            (*id, member_json(&user, who.info))
        })
        .collect();
    let joined = hub.store().presence_join(channel, &members).await?;
    if joined.added.is_empty() {
        return Ok(());
    }
    let max_bytes = LIST_BYTES_AT_JOIN.min(hub.push_limit().saturating_sub(LIST_ENVELOPE + channel.len()));
    let listed = list(hub, channel, None, LISTED_AT_JOIN, max_bytes).await?;
    hub.deliver(FrameKind::SendMsg, &joined.added, snapshot(channel, listed), false);
    let joins = members.iter().filter(|(id, _)| joined.added.contains(id)).map(|(id, kept)| (*id, kept.as_str()));
    let joins = by_user(hub, channel, joins.collect(), 1).await?;
    for (id, kept) in &joins {
        hub.webhooks.channel_event(channel, "member_added", json!({ "user_id": member(*id, kept, true).user }));
    }
    let events = joins.iter().filter_map(|(id, kept)| event("join", channel, *id, kept)).collect();
    announce(hub, channel, &joined.added, events).await;
    if joined.occupied {
        tell_occupancy(hub, channel, joined.added[0], true, None);
    }
    Ok(())
}

/// The members whose join (`delta` 1) or leave (-1) is announced: on a
/// Pusher app's channel, only a user's first connection and its last (the
/// store counts each user's, atomically, so one router sees each edge);
/// on a native channel, every member.
async fn by_user<'a>(
    hub: &Hub,
    channel: &str,
    members: Vec<(SessionId, &'a str)>,
    delta: i64,
) -> StoreResult<Vec<(SessionId, &'a str)>> {
    if pusher::split_fk_channel(channel).is_none() || members.is_empty() {
        return Ok(members);
    }
    let deltas: Vec<(String, i64)> = members.iter().map(|(id, kept)| (member(*id, kept, true).user, delta)).collect();
    let counts = hub.store().presence_count_users(channel, &deltas).await?;
    let edge = if delta > 0 { 1 } else { 0 };
    Ok(members.into_iter().zip(counts).filter(|(_, count)| *count == edge).map(|(member, _)| member).collect())
}

/// Presence for sessions that left `channel`, or ended (`via`: the link
/// that reported the end): the members hear a `leave` each; a last leave
/// empties the channel.
pub async fn left(hub: &Hub, channel: &str, ids: &[SessionId], via: Option<LinkId>) -> StoreResult<()> {
    if !is_presence(channel) || ids.is_empty() {
        return Ok(());
    }
    let left = hub.store().presence_leave(channel, ids).await?;
    let removed = left.removed.iter().map(|(id, kept)| (*id, kept.as_str())).collect();
    let leaves = by_user(hub, channel, removed, -1).await?;
    for (id, kept) in &leaves {
        hub.webhooks.channel_event(channel, "member_removed", json!({ "user_id": member(*id, kept, true).user }));
    }
    let leaves = leaves.iter().filter_map(|(id, kept)| event("leave", channel, *id, kept)).collect();
    announce(hub, channel, &[], leaves).await;
    if left.vacated {
        tell_occupancy(hub, channel, left.removed[0].0, false, via);
    }
    Ok(())
}

/// Ended sessions leave every channel and their user: presence is
/// announced first, while the store still knows their channels.
pub async fn forget(hub: &Hub, ids: &[SessionId], via: Option<LinkId>) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let channels = hub.store().sessions_channels(ids).await?;
    let mut by_channel: std::collections::HashMap<&str, Vec<SessionId>> = Default::default();
    for (id, channels) in ids.iter().zip(&channels) {
        for channel in channels.iter().filter(|channel| is_presence(channel)) {
            by_channel.entry(channel).or_default().push(*id);
        }
    }
    for (channel, ids) in by_channel {
        left(hub, channel, &ids, via).await?;
    }
    hub.store().forget(ids, &channels).await
}

/// A gateway says its sessions' clients went away (or came back): the
/// members of their presence channels hear `offline` (or `online`).
pub async fn away(hub: &Hub, link: LinkId, ids: &[SessionId], away: bool) -> StoreResult<()> {
    let held = hub.held_by(link, ids);
    let mut pairs = Vec::new();
    for (id, channels) in held.iter().zip(hub.store().sessions_channels(&held).await?) {
        pairs.extend(channels.into_iter().filter(|channel| is_presence(channel)).map(|channel| (channel, *id)));
    }
    if pairs.is_empty() {
        return Ok(());
    }
    let kind = if away { "offline" } else { "online" };
    for (channel, id, kept) in hub.store().presence_set_away(&pairs, away).await? {
        announce(hub, &channel, &[id], event(kind, &channel, id, &kept).into_iter().collect()).await;
    }
    Ok(())
}

/// A page of a channel's members: the whole count, the members after a
/// cursor in session id order, and the cursor of the next page if more.
#[derive(Debug, PartialEq, Eq)]
pub struct Listing {
    pub count: usize,
    pub members: Vec<Member>,
    pub next: Option<SessionId>,
}

/// A page after `after` of at most `limit` members and `max_bytes` of
/// their JSON (at least one member): it costs the page, not the channel.
pub async fn list(
    hub: &Hub,
    channel: &str,
    after: Option<SessionId>,
    limit: usize,
    max_bytes: usize,
) -> StoreResult<Listing> {
    let limit = limit.max(1);
    let page = hub.store().presence_page(channel, after, limit + 1).await?;
    let (mut members, mut bytes, mut next) = (Vec::<Member>::new(), 0, None);
    for (id, kept, online) in page.members {
        let member = member(id, &kept, online);
        let size = serde_json::to_vec(&member).map_or(0, |json| json.len()) + 1;
        let full = members.len() == limit || bytes + size > max_bytes;
        if let Some(last) = members.last().filter(|_| full) {
            next = Some(last.session);
            break;
        }
        bytes += size;
        members.push(member);
    }
    Ok(Listing { count: page.count, members, next })
}

/// Publishes presence events to the channel's members, but `except`, in
/// order.
async fn announce(hub: &Hub, channel: &str, except: &[SessionId], events: Vec<Bytes>) {
    let Ok(channel_name) = Channel::new(channel) else { return };
    for event in events {
        let frame = publish_frame(channel_name.clone(), except, Payload { data: event, binary: false });
        hub.publish(channel, frame, except);
        hub.metrics.count(Count::PresenceEvents);
    }
}

/// Asks a gateway to tell its backend that `channel` filled or emptied:
/// the one that holds `session`, else the one it was on (`via`), else any.
fn tell_occupancy(hub: &Hub, channel: &str, session: SessionId, occupied: bool, via: Option<LinkId>) {
    let Ok(channel) = Channel::new(channel) else { return };
    let frame = Occupancy { session, channel, occupied }.to_frame();
    if !hub.send_to_holder(session, via, frame) {
        tracing::warn!(%session, occupied, "no gateway linked to tell the backend of a channel's occupancy");
    }
}
