use clap::Parser;

runtime::use_jemalloc!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = chat_app::Config::parse();
    runtime::init_tracing(config.log_format);
    chat_app::run(config, runtime::Shutdown::on_signal()).await
}
