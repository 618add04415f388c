use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    router::runtime::init_tracing();
    router::run(
        router::Config::parse_from(router::runtime::args_with_config_file("ROUTER_CONFIG")?),
        router::runtime::shutdown_on_signal(),
    )
    .await
}
