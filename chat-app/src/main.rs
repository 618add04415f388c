use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    router::runtime::init_tracing();
    chat_app::run(chat_app::Config::parse(), router::runtime::shutdown_on_signal()).await
}
