//! MEMBER_JOIN: a client joined a presence channel as the member it
//! named (a Pusher client's signed `channel_data`); the others hear who.

use protocol::MemberJoin;

use crate::hub::{Hub, LinkId};
use crate::presence::{self, Joining};
use crate::store::StoreResult;

pub(super) async fn apply(hub: &Hub, link: LinkId, join: MemberJoin) -> StoreResult<()> {
    let held = hub.held_by(link, &[join.session]);
    let channel = join.channel.as_str();
    let added = hub.store().join(channel, &held).await?;
    // The members first: they are the client's subscription_succeeded.
    presence::joined(hub, channel, &held, Joining { user: Some(&join.user), info: join.info.as_ref() }).await?;
    crate::pusher::cache::joined(hub, channel, &added).await
}
