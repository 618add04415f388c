use std::net::SocketAddr;

use clap::Parser;

use protocol::{DEFAULT_HEARTBEAT_MS, DEFAULT_MAX_DATA};

/// The router: fan-out hub between backends and gateways.
#[derive(Parser, Debug, Clone)]
#[command(name = "router", version, args_override_self = true)]
pub struct Config {
    /// TOML file whose keys mirror these flags (`max_connections = 5000`); the command line wins over it, it over the environment.
    #[arg(long, env = "ROUTER_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Log format: text, or json (one object per line, for log shippers).
    #[arg(long, env = "ROUTER_LOG_FORMAT", default_value = "text")]
    pub log_format: runtime::LogFormat,
    /// fooking binary protocol listener, for gateways and backends.
    #[arg(long, env = "ROUTER_LISTEN", default_value = "127.0.0.1:9010")]
    pub listen: SocketAddr,
    /// JSON HTTP API listener.
    #[arg(long, env = "ROUTER_HTTP", default_value = "127.0.0.1:9011")]
    pub http: SocketAddr,
    /// Keep membership in Redis (redis://HOST:PORT, or redis+sentinel://HOST:PORT,HOST:PORT/MASTER for the master a Sentinel group names, followed through a failover, or redis+cluster://HOST:PORT,HOST:PORT for a Redis Cluster) instead of in memory.
    #[arg(long, env = "ROUTER_REDIS")]
    pub redis: Option<String>,
    /// Prefix of every Redis key the router writes; on a Redis Cluster it goes in each shard's hash tag with the shard's number (`{fk:1}ch:room`), so no braces.
    #[arg(long, env = "ROUTER_REDIS_PREFIX", default_value = "fk:")]
    pub redis_prefix: String,
    /// Largest frame data accepted, in bytes: a push whose payload is larger (or larger than a linked gateway's --max-frame) is refused (HTTP 413; on the binary port the connection is closed). Give routers and gateways the same.
    #[arg(long, env = "ROUTER_MAX_FRAME", default_value_t = DEFAULT_MAX_DATA)]
    pub max_frame: usize,
    /// Milliseconds between heartbeats on each gateway link; a gateway silent for three of its own intervals is cut off.
    #[arg(long, env = "ROUTER_LINK_HEARTBEAT_MS", default_value_t = DEFAULT_HEARTBEAT_MS)]
    pub link_heartbeat_ms: u64,
    /// Bytes queued for one gateway at most; past it, the gateway is cut off (it links again and resyncs).
    #[arg(long, env = "ROUTER_GATEWAY_QUEUE_BYTES", default_value_t = 32 << 20)]
    pub gateway_queue_bytes: usize,
    /// Milliseconds one write to a gateway may take; a gateway that reads nothing for longer is cut off.
    #[arg(long, env = "ROUTER_GATEWAY_STALL_MS", default_value_t = 2_000)]
    pub gateway_stall_ms: u64,
    /// Backends' secret: binary-protocol backends (AUTH frame) and HTTP calls
    /// (`Authorization: Bearer`) must present it. Needs --gateway-token too.
    #[arg(long, env = "ROUTER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Gateways' secret, for their links (a gateway's --router-token). A backend's token never opens a gateway link.
    #[arg(long, env = "ROUTER_GATEWAY_TOKEN", hide_env_values = true)]
    pub gateway_token: Option<String>,
    /// The operator's secret, for the page and JSON under /admin/ on the
    /// HTTP port (Bearer, or the password of HTTP Basic auth). Distinct from
    /// --token and --gateway-token. Without it, the page is served only by a
    /// router without tokens, which listens on loopback.
    #[arg(long, env = "ROUTER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Host names the HTTP port answers to (repeatable, `*` for any); a
    /// request under another Host gets 421, so a DNS-rebinding page cannot
    /// reach the router under its own name. Default: without --token, the
    /// loopback names and the --http address; with it, any.
    #[arg(long, env = "ROUTER_HTTP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub http_allowed_hosts: Vec<String>,
    /// Allow listening beyond loopback without a token.
    #[arg(long, env = "ROUTER_INSECURE")]
    pub insecure: bool,
    /// Milliseconds a gateway's lease lasts: a gateway no router has held a
    /// link to for this long is dead, and its sessions are ended.
    #[arg(long, env = "ROUTER_GATEWAY_LEASE_MS", default_value_t = 10_000)]
    pub gateway_lease_ms: u64,
    /// Channels routed to one gateway on its own word (its CH_SUB: members
    /// its clients joined by asking, or a resync) at most; past it, a new
    /// channel is not routed to it (counted, logged). Give each gateway's
    /// --max-channels no more.
    #[arg(long, env = "ROUTER_MAX_CHANNELS_PER_GATEWAY", default_value_t = 1 << 18)]
    pub max_channels_per_gateway: usize,
    /// Channels routed at most, all gateways together; at least the
    /// gateways times --max-channels-per-gateway.
    #[arg(long, env = "ROUTER_MAX_ROUTED_CHANNELS", default_value_t = 1 << 20)]
    pub max_routed_channels: usize,
    /// Connections served at once per listener.
    #[arg(long, env = "ROUTER_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Channels that keep their last messages, for late joiners and
    /// `/v1/history`: PREFIX=COUNT, or PREFIX=COUNT/TTL_SECS (300 s unless
    /// given, after the channel's last publish); repeat it, the longest
    /// prefix a channel has wins.
    #[arg(long, env = "ROUTER_HISTORY", value_delimiter = ',')]
    pub history: Vec<String>,
    /// Bytes of messages a channel keeps at most: older ones go first, and
    /// a larger message is published but not kept.
    #[arg(long, env = "ROUTER_HISTORY_MAX_BYTES", default_value_t = 1 << 20)]
    pub history_max_bytes: usize,
    /// Bytes all kept channels hold together at most (each message costs
    /// its size and 64 bytes): past it, the channels published to longest
    /// ago are dropped whole, so clients alone cannot grow the router (or
    /// Redis) by opening channels. At least --history-max-bytes.
    #[arg(long, env = "ROUTER_HISTORY_TOTAL_BYTES", default_value_t = 32 << 20)]
    pub history_total_bytes: usize,
    /// Kept channels (by name prefix) whose messages go to clients in an
    /// envelope with their offset, `{"fk":"pub","channel","offset","data"}`,
    /// so that a client can recover from the last one it saw.
    #[arg(long, env = "ROUTER_HISTORY_ENVELOPE", value_delimiter = ',')]
    pub history_envelope: Vec<String>,
    /// A Pusher app whose calls the Pusher HTTP API (`/apps/ID/...`) takes,
    /// signed with its secret (repeatable): `ID:KEY:SECRET`, as the
    /// gateways' `--pusher-app`. See docs/PUSHER.md.
    #[arg(long = "pusher-app", env = "ROUTER_PUSHER_APP", value_delimiter = ' ', hide_env_values = true)]
    pub pusher_apps: Vec<protocol::pusher::App>,
    /// Where a Pusher app's webhooks go (repeatable): `ID=http://HOST:PORT/PATH`.
    /// Channel occupied and vacated, members added and removed, client
    /// events; signed with the app's secret, batched, tried again for 30 s.
    #[arg(long = "pusher-webhook", env = "ROUTER_PUSHER_WEBHOOK", value_delimiter = ' ', value_parser = crate::webhooks::parse_target)]
    pub pusher_webhooks: Vec<(String, http::Uri)>,
}

impl Config {
    /// Refuses settings that would turn a check off: an empty secret, a
    /// backends' token without the gateways' own.
    pub fn check(&self) -> anyhow::Result<()> {
        self.history_rules()?;
        let on_cluster = self.redis.as_deref().is_some_and(|url| url.starts_with("redis+cluster://"));
        if on_cluster && self.redis_prefix.contains(['{', '}']) {
            anyhow::bail!(
                "--redis-prefix {:?}: on a Redis Cluster the router puts its own hash tags around it, so no braces",
                self.redis_prefix
            );
        }
        let shards = if on_cluster { crate::store::shards::CLUSTER_SHARDS } else { 1 };
        let one_channel = self.history_max_bytes + crate::store::history::ENTRY_COST;
        if self.history_total_bytes / shards < one_channel {
            anyhow::bail!(
                "--history-total-bytes {} is shared by a Redis Cluster's {shards} shards: each share must hold one channel's --history-max-bytes {} (and 64 bytes)",
                self.history_total_bytes,
                self.history_max_bytes
            );
        }
        self.pusher_apps()?;
        runtime::no_empty_secrets(&[
            ("--token", &self.token),
            ("--gateway-token", &self.gateway_token),
            ("--admin-token", &self.admin_token),
        ])?;
        if self.admin_token.is_some() && [&self.token, &self.gateway_token].contains(&&self.admin_token) {
            anyhow::bail!("--admin-token must differ from --token and --gateway-token: each opens its own door");
        }
        if self.token.is_some() && self.gateway_token.is_none() {
            anyhow::bail!("--token needs --gateway-token: gateways must not share the backends' credential");
        }
        for addr in [self.listen, self.http] {
            if !addr.ip().is_loopback() && self.token.is_none() && !self.insecure {
                anyhow::bail!("refusing to listen on {addr} without --token: anyone who reaches it could push to every client (--insecure to allow)");
            }
        }
        Ok(())
    }

    /// The Pusher apps, none sharing an id or a key.
    pub fn pusher_apps(&self) -> anyhow::Result<protocol::pusher::Apps> {
        protocol::pusher::Apps::new(self.pusher_apps.clone()).map_err(anyhow::Error::msg)
    }

    /// Who may see the operator's page.
    pub fn admin_access(&self) -> crate::admin::Access {
        use crate::admin::Access;
        match (&self.admin_token, &self.token) {
            (Some(token), _) => {
                Access::Token(token.as_str().into(), std::sync::Arc::new(protocol::signing::Signer::new(Some(token))))
            }
            (None, None) if self.http.ip().is_loopback() => Access::Open,
            (None, _) => Access::Off,
        }
    }

    /// The names the HTTP port answers to (`--http-allowed-hosts`).
    pub fn http_hosts(&self) -> crate::server::guard::Hosts {
        use crate::server::guard::Hosts;
        match (&self.http_allowed_hosts[..], &self.token) {
            ([], Some(_)) => Hosts::Any,
            ([], None) => Hosts::loopback_and(self.http.ip()),
            (names, _) => Hosts::listed(names),
        }
    }

    /// `--history`, read.
    /// `--history`, and every Pusher app's cache channels: their last
    /// event, for 30 minutes, as Pusher keeps it.
    pub fn history_rules(&self) -> anyhow::Result<crate::store::history::Rules> {
        let mut rules = self.history.clone();
        for app in &self.pusher_apps {
            let prefix = protocol::pusher::fk_prefix(&app.id);
            for cache in protocol::pusher::CACHE_PREFIXES {
                rules.push(format!("{prefix}{cache}=1/{}", protocol::pusher::CACHE_TTL_SECS));
            }
        }
        crate::store::history::Rules::parse(
            &rules,
            self.history_max_bytes,
            self.history_total_bytes,
            &self.history_envelope,
        )
    }

    /// `--max-channels-per-gateway` and `--max-routed-channels`.
    pub fn route_bounds(&self) -> crate::hub::RouteBounds {
        crate::hub::RouteBounds { per_gateway: self.max_channels_per_gateway, total: self.max_routed_channels }
    }

    /// What every gateway link of this router follows.
    pub fn link_settings(&self) -> crate::server::binary::GatewayLinkSettings {
        crate::server::binary::GatewayLinkSettings {
            heartbeat: std::time::Duration::from_millis(self.link_heartbeat_ms.max(1)),
            max_frame: self.max_frame,
            queue_bytes: self.gateway_queue_bytes,
            stall: std::time::Duration::from_millis(self.gateway_stall_ms.max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Config;

    fn check(args: &[&str]) -> anyhow::Result<()> {
        Config::try_parse_from(std::iter::once("router").chain(args.iter().copied()))?.check()
    }

    #[test]
    fn a_cluster_takes_a_prefix_without_braces_and_a_history_share_that_holds_one_channel() {
        let on_cluster = |more: &[&str]| check(&[&["--redis", "redis+cluster://127.0.0.1:7000"], more].concat());
        assert!(on_cluster(&[]).is_ok(), "the defaults: a sixteenth of 32 MiB holds 1 MiB");
        assert!(on_cluster(&["--redis-prefix", "{fk}"]).is_err(), "braces would break the shards' tags");
        let four_mib = ["--history-total-bytes", "4194304"];
        assert!(on_cluster(&four_mib).is_err(), "a sixteenth of 4 MiB cannot hold one channel's 1 MiB");
        assert!(check(&four_mib).is_ok(), "one Redis keeps the whole total as one share");
        assert!(check(&["--redis-prefix", "{fk}"]).is_ok(), "one Redis puts no tags around it");
    }
}
