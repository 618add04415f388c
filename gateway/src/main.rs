use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    router::runtime::init_tracing();
    gateway::run(gateway::Config::parse(), router::runtime::shutdown_on_signal()).await
}
