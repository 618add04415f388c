use protocol::cmd::{Presence, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::presence;
use crate::store::StoreResult;

/// The members by session id: a whole count, and a page after the cursor
/// up to the limit, within the frame limit; `next` if there is more.
impl Apply for Presence {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let max_bytes = hub.max_frame().saturating_sub(presence::LIST_ENVELOPE);
        let listing = presence::list(hub, self.channel.as_str(), self.cursor, self.limit(), max_bytes).await?;
        Ok(Reply::Presence { count: listing.count, members: listing.members, next: listing.next })
    }
}
