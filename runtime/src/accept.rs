//! The bounded accept loop every listener runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::Shutdown;

/// Accepts until shutdown, with at most `max_connections` served at once:
/// past that, accepting waits instead of spawning without bound.
pub async fn accept_loop<F, Fut>(listener: TcpListener, max_connections: usize, shutdown: Shutdown, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait() => return,
            permit = permits.clone().acquire_owned() => permit.expect("semaphore never closes"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = serve(stream, peer);
        tokio::spawn(async move {
            conn.await;
            drop(permit);
        });
    }
}
