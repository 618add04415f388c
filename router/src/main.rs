use clap::Parser;

runtime::use_jemalloc!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = router::Config::parse_from(runtime::args_with_config_file("ROUTER_CONFIG")?);
    runtime::init_tracing(config.log_format);
    router::run(config, runtime::Shutdown::on_signal()).await
}
