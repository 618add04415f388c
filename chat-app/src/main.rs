use clap::Parser;

runtime::use_jemalloc!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    chat_app::run(chat_app::Config::parse(), runtime::Shutdown::on_signal()).await
}
