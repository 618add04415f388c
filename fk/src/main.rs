//! fk in one binary. `fk gateway`, `fk router` and `fk chat-app` take each
//! part's own flags, environment and `--config FILE`, as the separate
//! binaries do; `fk all --config fk.toml` runs a single node, the router
//! and the gateway in one process, from one file (see `runtime::config`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

runtime::use_jemalloc!();

#[derive(Parser)]
#[command(
    name = "fk",
    version,
    about = "A realtime connection gateway: WebSocket, SSE and TCP clients, FastCGI backends, a fan-out router."
)]
struct Cli {
    #[command(subcommand)]
    part: Part,
}

#[derive(Subcommand)]
enum Part {
    /// The gateway: holds client connections and turns their events into FastCGI requests (`fk gateway --help`).
    #[command(disable_help_flag = true)]
    Gateway {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// The router: the fan-out hub backends command (`fk router --help`).
    #[command(disable_help_flag = true)]
    Router {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// The chat and game-login queue backend, over FastCGI (`fk chat-app --help`).
    #[command(disable_help_flag = true)]
    ChatApp {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// A single node: the router and the gateway in one process, from one
    /// file with a [router] and a [gateway] table (keys as each part's
    /// flags). The gateway links to this router unless the file says.
    All {
        /// The file: /etc/fk/fk.toml in the package.
        #[arg(long, env = "FK_CONFIG")]
        config: PathBuf,
    },
}

/// `fk PART ARGS` as the part's own command line, its file's settings first.
fn part_args(part: &str, args: Vec<OsString>, config_env: &str) -> anyhow::Result<Vec<OsString>> {
    let command = std::iter::once(OsString::from(format!("fk {part}"))).chain(args).collect();
    runtime::args_with_config_file_from(command, config_env)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let shutdown = runtime::Shutdown::on_signal();
    match Cli::parse().part {
        Part::Gateway { args } => {
            let config = gateway::Config::parse_from(part_args("gateway", args, "GATEWAY_CONFIG")?);
            runtime::init_tracing(config.log_format);
            gateway::run(config, shutdown).await
        }
        Part::Router { args } => {
            let config = router::Config::parse_from(part_args("router", args, "ROUTER_CONFIG")?);
            runtime::init_tracing(config.log_format);
            router::run(config, shutdown).await
        }
        Part::ChatApp { args } => {
            let config = chat_app::Config::parse_from(part_args("chat-app", args, "CHAT_CONFIG")?);
            runtime::init_tracing(config.log_format);
            chat_app::run(config, shutdown).await
        }
        Part::All { config } => {
            let text = std::fs::read_to_string(&config)
                .map_err(|err| anyhow::anyhow!("config {}: {err}", config.display()))?;
            let tables = runtime::config_tables(&text, &["router", "gateway"])
                .map_err(|err| anyhow::anyhow!("config {}: {err}", config.display()))?;
            let [router_flags, mut gateway_flags] = <[Vec<String>; 2]>::try_from(tables).expect("two tables asked");
            let router = router::Config::parse_from(std::iter::once("fk router".to_owned()).chain(router_flags));
            if !gateway_flags.iter().any(|flag| flag.starts_with("--router=")) {
                gateway_flags.push(format!("--router={}", router.listen));
            }
            let gateway = gateway::Config::parse_from(std::iter::once("fk gateway".to_owned()).chain(gateway_flags));
            runtime::init_tracing(gateway.log_format);
            // The first part to fail (a port in use, say) ends the node.
            tokio::try_join!(router::run(router, shutdown.clone()), gateway::run(gateway, shutdown.clone()))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_subcommands_are_the_parts_and_all() {
        Cli::command().debug_assert();
        let names: Vec<_> = Cli::command().get_subcommands().map(|c| c.get_name().to_owned()).collect();
        assert_eq!(names, ["gateway", "router", "chat-app", "all"]);
    }
}
