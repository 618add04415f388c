//! The process's shutdown: triggered once (by SIGINT or SIGTERM, or by
//! hand) and awaited by everything that must stop. Waiting is notified,
//! never polled.

use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// A shutdown that SIGINT or SIGTERM triggers.
    pub fn on_signal() -> Shutdown {
        let shutdown = Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            trigger.trigger();
        });
        shutdown
    }

    pub fn trigger(&self) {
        self.0.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Returns once the shutdown is triggered (at once if it was).
    pub async fn wait(&self) {
        self.0.cancelled().await
    }
}
