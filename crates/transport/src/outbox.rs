//! The bounded outbound queue behind each session.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc};

use junction_core::{Outbound, Outbox};

/// The sending side of a session's queue, given to the core. Never blocks.
pub(crate) struct QueueOutbox {
    tx: mpsc::Sender<Outbound>,
    /// Set when an item that may not be dropped did not fit: the driver closes the session.
    overflowed: AtomicBool,
    /// Wakes the driver when `overflowed` is set.
    overflow: Notify,
    /// Events dropped because the session did not keep up.
    dropped_events: AtomicU64,
    /// Close the session instead of dropping events when the queue is full.
    disconnect_when_full: bool,
}

impl QueueOutbox {
    pub(crate) fn new(
        capacity: usize,
        disconnect_when_full: bool,
    ) -> (Arc<Self>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outbox = Self {
            tx,
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
            dropped_events: AtomicU64::new(0),
            disconnect_when_full,
        };
        (Arc::new(outbox), rx)
    }

    /// Resolves once the queue overflowed with an item that could not be dropped.
    pub(crate) async fn overflowed(&self) {
        loop {
            let notified = self.overflow.notified();
            if self.overflowed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

impl Outbox for QueueOutbox {
    fn push(&self, item: Outbound) {
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Outbound::Event(_)))
                if !self.disconnect_when_full =>
            {
                self.dropped_events.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("junction_events_dropped_total").increment(1);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::Release);
                self.overflow.notify_one();
            }
            // The connection is gone; the session is being torn down.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }
}
