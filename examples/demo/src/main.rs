//! The whole chat demo in one process: router (membership in memory),
//! chat-app and gateway on their default ports, the gateway serving the
//! example pages. Open http://127.0.0.1:9005/.

use clap::Parser;

runtime::use_jemalloc!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let shutdown = runtime::Shutdown::on_signal();
    // Each part parses its own defaults (and its env vars), as its binary would.
    let router = router::Config::parse_from(["router"]);
    runtime::init_tracing(router.log_format);
    let app = chat_app::Config::parse_from(["chat-app", "--router", &router.listen.to_string()]);
    let pages = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let gateway = gateway::Config::parse_from([
        "gateway",
        "--backend",
        &app.listen.to_string(),
        "--router",
        &router.listen.to_string(),
        "--page",
        &format!("/={pages}/chat/index.html"),
        "--page",
        &format!("/queue={pages}/queue/index.html"),
        "--page",
        &format!("/fk.js={pages}/../clients/js/fk.js"),
    ]);
    tracing::info!("chat demo: open http://{}/ in two browser tabs", gateway.listen);
    // The first part to fail (a port in use, say) ends the demo.
    tokio::try_join!(
        router::run(router, shutdown.clone()),
        chat_app::run(app, shutdown.clone()),
        gateway::run(gateway, shutdown.clone()),
    )?;
    Ok(())
}
