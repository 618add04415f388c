use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    router::runtime::init_tracing();
    router::run(router::Config::parse(), router::runtime::shutdown_on_signal()).await
}
