use protocol::cmd::{GatewayInfo, Info, InfoReport, Reply};

use super::Apply;
use crate::hub::Hub;
use crate::store::StoreResult;

/// The sessions linked here, by gateway, with the channels they are in.
impl Apply for Info {
    async fn apply(self, hub: &Hub) -> StoreResult<Reply> {
        let (clients, gateways) = hub.sessions_by_gateway();
        let mut report = InfoReport { clients, channels: hub.store().channel_count().await?, gateways: Vec::new() };
        for (server_id, worker_id, ids) in gateways {
            let channels = hub.store().channels_of(&ids).await?;
            report.gateways.push(GatewayInfo { server_id, worker_id, sessions: ids.len(), channels });
        }
        Ok(Reply::Info(report))
    }
}
