//! Backend commands applied to the router's [`Hub`]: one file per
//! command (its wire layout is in `protocol::cmd`).

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

/// A file per command, named as in `protocol::for_each_command!`, each
/// with its `Apply`: adding a command to that list and a file here is all.
macro_rules! apply_each {
    ($($variant:ident($file:ident::$command:ident)),* $(,)?) => {
        $(mod $file;)*

        async fn apply_uncounted(command: Command, hub: &Hub) -> StoreResult<Reply> {
            match command {
                $(Command::$variant(command) => command.apply(hub).await,)*
                Command::Batch(commands) => apply_batch(commands, hub).await,
            }
        }
    };
}

protocol::for_each_command!(apply_each);

async fn apply_batch(commands: Vec<Command>, hub: &Hub) -> StoreResult<Reply> {
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
