use std::net::SocketAddr;

use clap::Parser;

/// The chat app: a stateless FastCGI backend for fooking's chat protocol.
#[derive(Parser, Debug, Clone)]
#[command(name = "chat-app", version)]
pub struct Config {
    /// Log format: text, or json (one object per line, for log shippers).
    #[arg(long, env = "CHAT_LOG_FORMAT", default_value = "text")]
    pub log_format: runtime::LogFormat,
    /// FastCGI listener the gateway connects to.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// Router (binary protocol) to push through.
    #[arg(long, env = "CHAT_ROUTER", default_value = "127.0.0.1:9010")]
    pub router: String,
    /// The router's --token.
    #[arg(long, env = "CHAT_ROUTER_TOKEN", hide_env_values = true)]
    pub router_token: Option<String>,
    /// Keep who is online in Redis (redis://HOST:PORT, or redis+sentinel://HOST:PORT,HOST:PORT/MASTER behind Sentinels, or redis+cluster://HOST:PORT,HOST:PORT); in process without it.
    #[arg(long, env = "CHAT_REDIS")]
    pub redis: Option<String>,
    /// Players let into each game region at once; the rest queue.
    #[arg(long, env = "CHAT_QUEUE_CAPACITY", default_value_t = 2)]
    pub queue_capacity: usize,
    /// Secret that signs login cookies; every app process behind one gateway needs the same.
    /// Without it, a random one: logins then last as long as the process.
    #[arg(long, env = "CHAT_COOKIE_SECRET", hide_env_values = true)]
    pub cookie_secret: Option<String>,
    /// Operator's secret for the queue's operator calls (`offline/<uid>`), sent as `Authorization: Bearer`. Without it those calls are refused.
    #[arg(long, env = "CHAT_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// Prefix of every Redis key the app writes.
    #[arg(long, env = "CHAT_REDIS_PREFIX", default_value = "chat:")]
    pub redis_prefix: String,
}
