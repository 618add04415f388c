//! What a gateway's link frames do here, one file per frame, as `cmd/`
//! is for backends' commands: `server::binary` reads each frame once
//! ([`ToRouter`]), keeps the link's clock itself (HEARTBEAT), and hands the
//! rest to [`apply`]. A gateway reports its sessions (CONN, CLOSE) and, on
//! (re)link or when asked to resync, what they belong to (CH_ADD, BIND),
//! which the store takes again: that is how a store that lost its data is
//! refilled. It counts its members of each channel (CH_SUB, CH_UNSUB), asks
//! for barriers (SYNC), shows clients gone and back (SESSIONS_AWAY,
//! SESSIONS_BACK), reports for the operator's page (STATUS, DESCRIBED),
//! and moves sessions (RESUME, MOVING and the answers). For Pusher
//! clients it also says what they did by themselves: joined a presence
//! channel as a member (MEMBER_JOIN), left a channel (CH_DEL), sent a
//! client event (PUBLISH_EXCEPT).

mod away;
mod bind;
mod ch_add;
mod ch_del;
mod close;
mod conn;
mod interest;
mod member_join;
mod moves;
mod relay;
mod status;
mod sync;

use protocol::ToRouter;

use crate::hub::{Hub, LinkId};
use crate::store::StoreResult;

/// Applies one frame of the gateway on `link`. What the store could not
/// take is logged: the gateway's next resync brings it again.
pub async fn apply(hub: &Hub, link: LinkId, frame: ToRouter) {
    let stored = match frame {
        ToRouter::Heartbeat(_) => Ok(()),
        ToRouter::Status(status) => status::status(hub, link, status),
        ToRouter::Described { session, description } => status::described(hub, link, session, description),
        ToRouter::Connected(sessions) => conn::apply(hub, link, &sessions).await,
        ToRouter::Closed(sessions) => close::apply(hub, link, &sessions).await,
        ToRouter::Interest(interest) => interest::apply(hub, link, interest),
        ToRouter::Sync(barrier) => sync::apply(hub, link, barrier),
        ToRouter::Joined { sessions, channel } => ch_add::apply(hub, link, &sessions, channel.as_str()).await,
        ToRouter::MemberJoined(join) => member_join::apply(hub, link, join).await,
        ToRouter::Left { sessions, channel } => ch_del::apply(hub, link, &sessions, channel.as_str()).await,
        ToRouter::Relay(publish) => relay::apply(hub, link, publish).await,
        ToRouter::Bound { session, user } => bind::apply(hub, link, session, &user).await,
        ToRouter::Away { sessions, away } => away::apply(hub, link, &sessions, away).await,
        ToRouter::Resume { session, ask } => moves::resume(hub, link, session, &ask),
        ToRouter::Moving { session, to } => moves::moving(hub, link, session, to).await,
        ToRouter::ResumeAnswer { session, frame } => moves::answer(hub, link, session, frame),
    };
    if let Err(err) = stored {
        tracing::error!(%err, "could not store what a gateway reported");
    }
}

/// What a frame that touches no store answers.
fn done() -> StoreResult<()> {
    Ok(())
}
