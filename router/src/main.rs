use clap::Parser;

runtime::use_jemalloc!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    router::run(
        router::Config::parse_from(runtime::args_with_config_file("ROUTER_CONFIG")?),
        runtime::Shutdown::on_signal(),
    )
    .await
}
