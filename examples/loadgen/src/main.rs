//! loadgen: a load tool for WebSocket and length-framed TCP gateways.
//!
//! ```text
//! loadgen echo    --url ws://127.0.0.1:9005/ -c 100 -s 64 -d 10
//! loadgen idle    --url ws://127.0.0.1:9005/ -c 100000 --pid $(pidof gateway)
//! loadgen connect --url ws://127.0.0.1:9005/ -c 10000
//! loadgen fanout  --url ws://127.0.0.1:9005/ --url ws://127.0.0.1:9006/ --router 127.0.0.1:9011 -m 10000
//! loadgen soak    --url ws://127.0.0.1:9005/ --router 127.0.0.1:9011 -d 20
//! loadgen churn   --url ws://127.0.0.1:9005/ --url ws://127.0.0.1:9006/ --router 127.0.0.1:9011 -c 100
//! ```
//! Every scenario checks every message; any loss, repeat or reordering
//! fails the run (exit code 1).

mod admin;
mod report;
mod router_api;
mod scenario;
mod transport;

use clap::{Parser, Subcommand};

use transport::Endpoint;

#[derive(Parser, Debug)]
#[command(name = "loadgen", version, about = "Load generator for WebSocket, SSE and length-framed TCP gateways")]
struct Cli {
    /// Endpoint: ws://HOST:PORT/PATH, ws+deflate://HOST:PORT/PATH (offers permessage-deflate),
    /// sse://HOST:PORT/PATH (an event stream, a post per message) or tcp://HOST:PORT (repeat to
    /// spread over several gateways).
    #[arg(long = "url", global = true, default_value = "ws://127.0.0.1:9005/")]
    urls: Vec<Endpoint>,
    /// Print the report as one JSON object.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Round trips through an echo backend, every reply checked.
    Echo(scenario::echo::Args),
    /// Idle connections and the gateway memory they take.
    Idle(scenario::idle::Args),
    /// Connection setup rate and time to the first message.
    Connect(scenario::connect::Args),
    /// One channel's members over several gateways; deliveries per second.
    Fanout(scenario::fanout::Args),
    /// Echo with reconnects plus fan-out for a given time, zero loss required.
    Soak(scenario::soak::Args),
    /// Members that keep dropping and resuming, on the next gateway, while messages flow; zero loss required.
    Churn(scenario::churn::Args),
    /// What each operation costs each tier: CPU time and Redis commands per connect, join, publish, leave, presence join, history join, close.
    Costs(scenario::costs::Args),
    /// Members join a channel that keeps history while messages flow; each must get the kept ones, then live, none lost or repeated.
    LateJoin(scenario::late_join::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Many connections need many descriptors: take all the hard limit allows.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let urls = &cli.urls;
    let report = match cli.scenario {
        Scenario::Echo(args) => scenario::echo::run(urls, args).await?,
        Scenario::Idle(args) => scenario::idle::run(urls, args).await?,
        Scenario::Connect(args) => scenario::connect::run(urls, args).await?,
        Scenario::Fanout(args) => scenario::fanout::run(urls, args).await?,
        Scenario::Soak(args) => scenario::soak::run(urls, args).await?,
        Scenario::Churn(args) => scenario::churn::run(urls, args).await?,
        Scenario::LateJoin(args) => scenario::late_join::run(urls, args).await?,
        Scenario::Costs(args) => scenario::costs::run(urls, args).await?,
    };
    report.print(cli.json);
    std::process::exit(if report.ok() { 0 } else { 1 });
}
