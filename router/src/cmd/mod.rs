//! Backend commands applied to the router's [`Hub`]: one file per
//! command (its wire layout is in `protocol::cmd`).

mod bind;
mod broadcast;
mod channels;
mod count;
mod info;
mod join;
mod kick;
mod leave;
mod members;
mod online;
mod publish;
mod publish_except;
mod send;
mod send_user;

use std::future::Future;

use protocol::cmd::{Command, Reply};

use crate::hub::Hub;
use crate::store::StoreResult;

/// A command applied to the hub: what it changes, and its result.
pub trait Apply {
    fn apply(self, hub: &Hub) -> impl Future<Output = StoreResult<Reply>> + Send;
}

impl Apply for Command {
    /// Applies the command, counting it (and its failure) in the hub's
    /// metrics. Written out, not `async fn`: a batch applies commands in
    /// turn, and the recursion needs the future's type named.
    #[allow(clippy::manual_async_fn)]
    fn apply(self, hub: &Hub) -> impl Future<Output = StoreResult<Reply>> + Send {
        async move {
            let name = self.name();
            let result = apply_uncounted(self, hub).await;
            hub.metrics.command(name, result.is_ok());
            result
        }
    }
}

async fn apply_uncounted(command: Command, hub: &Hub) -> StoreResult<Reply> {
    match command {
        Command::Send(cmd) => cmd.apply(hub).await,
        Command::Broadcast(cmd) => cmd.apply(hub).await,
        Command::Kick(cmd) => cmd.apply(hub).await,
        Command::Join(cmd) => cmd.apply(hub).await,
        Command::Leave(cmd) => cmd.apply(hub).await,
        Command::Publish(cmd) => cmd.apply(hub).await,
        Command::Info(cmd) => cmd.apply(hub).await,
        Command::Bind(cmd) => cmd.apply(hub).await,
        Command::SendUser(cmd) => cmd.apply(hub).await,
        Command::Members(cmd) => cmd.apply(hub).await,
        Command::Count(cmd) => cmd.apply(hub).await,
        Command::Channels(cmd) => cmd.apply(hub).await,
        Command::Online(cmd) => cmd.apply(hub).await,
        Command::PublishExcept(cmd) => cmd.apply(hub).await,
        Command::Batch(commands) => {
            let mut results = Vec::with_capacity(commands.len());
            for command in commands {
                let result = Box::pin(command.apply(hub)).await;
                results.push(match result {
                    Ok(reply) => serde_json::to_value(reply).expect("replies serialize"),
                    Err(err) => protocol::cmd::error_body("unavailable", &err.to_string()),
                });
            }
            Ok(Reply::Batch { results })
        }
    }
}
