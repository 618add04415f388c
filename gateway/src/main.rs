use clap::Parser;

runtime::use_jemalloc!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    gateway::run(
        gateway::Config::parse_from(runtime::args_with_config_file("GATEWAY_CONFIG")?),
        runtime::Shutdown::on_signal(),
    )
    .await
}
