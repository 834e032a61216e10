//! The router's timer task: expires calls whose deadline passed (call timeouts). It sleeps
//! until the soonest deadline and is woken early when the core sees a sooner one.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use junction_core::Router;

use crate::listener::Shutdown;

/// Runs until shutdown begins.
pub async fn run_timers(router: Arc<Router>, shutdown: Shutdown) {
    let wake = Arc::new(Notify::new());
    let waker = Arc::clone(&wake);
    router.set_timer_waker(Box::new(move || waker.notify_one()));
    loop {
        let next = router.expire(std::time::Instant::now());
        let sleep = async {
            match next {
                Some(deadline) => tokio::time::sleep_until(Instant::from_std(deadline)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = wake.notified() => {}
            () = shutdown.cancelled() => return,
        }
    }
}
