//! Waiting for a condition that others change and announce on a [`Notify`].

use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Returns once `done` holds, read again whenever `changed` is notified
/// (to all waiters), or once `wait` has passed; whether it holds. A
/// notification between the check and the wait is not lost: the waiter
/// is registered before each check.
pub async fn until(changed: &Notify, wait: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if done() {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return done();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn it_returns_when_told_and_gives_up_at_the_deadline() {
        let (changed, flag) = (Arc::new(Notify::new()), Arc::new(AtomicBool::new(false)));
        let setter = tokio::spawn({
            let (changed, flag) = (changed.clone(), flag.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                flag.store(true, SeqCst);
                changed.notify_waiters();
            }
        });
        assert!(until(&changed, Duration::from_secs(5), || flag.load(SeqCst)).await);
        setter.await.unwrap();
        let started = Instant::now();
        assert!(!until(&changed, Duration::from_millis(30), || false).await);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
