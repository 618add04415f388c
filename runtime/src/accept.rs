//! The bounded accept loop every listener runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Shutdown;

/// How many accepted connections are served at once: listeners given
/// clones of one `Slots` share its bound.
#[derive(Clone)]
pub struct Slots {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots { permits: Arc::new(Semaphore::new(max)), max }
    }

    /// Connections being served now.
    pub fn in_use(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

/// Accepts until shutdown, each connection served in a task of its own
/// while it holds one of `slots`: past the bound, accepting waits (the
/// kernel's backlog holds the rest) instead of spawning without bound.
pub async fn accept_loop<F, Fut>(listener: TcpListener, slots: Slots, shutdown: Shutdown, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    accept_loop_releasing(listener, slots, shutdown, move |stream, peer, _| serve(stream, peer)).await
}

/// One connection's place among `Slots`. It is given back when the
/// connection ends, or before, when it no longer needs one (a gateway's
/// HTTP connection that became a long-lived session).
#[derive(Clone)]
pub struct Slot(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl Slot {
    pub fn release(&self) {
        self.0.lock().expect("not poisoned").take();
    }
}

/// [`accept_loop`], with each connection's [`Slot`] handed to `serve`.
pub async fn accept_loop_releasing<F, Fut>(listener: TcpListener, slots: Slots, shutdown: Shutdown, serve: F)
where
    F: Fn(TcpStream, SocketAddr, Slot) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        // A free slot first, then the next connection: with none free, the
        // kernel's backlog holds the rest, and no slot is held by a wait
        // for a connection (listeners sharing slots may race for the last
        // one: the loser holds its one accepted connection until one frees).
        let free = tokio::select! {
            _ = shutdown.wait() => return,
            free = slots.permits.acquire() => free.expect("semaphore never closes"),
        };
        drop(free);
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
        let permit = tokio::select! {
            _ = shutdown.wait() => return,
            permit = slots.permits.clone().acquire_owned() => permit.expect("semaphore never closes"),
        };
        let _ = stream.set_nodelay(true);
        let slot = Slot(Arc::new(Mutex::new(Some(permit))));
        let conn = serve(stream, peer, slot.clone());
        tokio::spawn(async move {
            conn.await;
            slot.release();
        });
    }
}
