use protocol::cmd::{Bind, Reply};
use protocol::FrameKind;

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

impl Apply for Bind {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        hub.store().bind_user(&self.session, &self.user).await?;
        hub.note_unheld(std::slice::from_ref(&self.session), std::time::Instant::now());
        let frame = self.to_frame();
        hub.tell_gateways(FrameKind::Bind, std::slice::from_ref(&self.session), frame.data);
        Ok(Reply::Changed { sessions: 1 })
    }
}
