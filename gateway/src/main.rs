use clap::Parser;

runtime::use_jemalloc!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = gateway::Config::parse_from(runtime::args_with_config_file("GATEWAY_CONFIG")?);
    runtime::init_tracing(config.log_format);
    gateway::run(config, runtime::Shutdown::on_signal()).await
}
