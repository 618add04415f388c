use std::net::SocketAddr;

use clap::Parser;

/// The chat app: a stateless FastCGI backend for fooking's chat protocol.
#[derive(Parser, Debug, Clone)]
#[command(name = "chat-app", version)]
pub struct Config {
    /// FastCGI listener the gateway connects to.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// Router (binary protocol) to push through.
    #[arg(long, env = "CHAT_ROUTER", default_value = "127.0.0.1:9010")]
    pub router: String,
    /// The router's --token.
    #[arg(long, env = "CHAT_ROUTER_TOKEN", hide_env_values = true)]
    pub router_token: Option<String>,
    /// Keep who is online in Redis (redis://HOST:PORT); in process without it.
    #[arg(long, env = "CHAT_REDIS")]
    pub redis: Option<String>,
    /// Prefix of every Redis key the app writes.
    #[arg(long, env = "CHAT_REDIS_PREFIX", default_value = "chat:")]
    pub redis_prefix: String,
}
