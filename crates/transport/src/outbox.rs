//! The bounded outbound queue behind each session.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

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
    /// Approximate bytes waiting (see `Outbound::approx_size`), bounded by `max_bytes` for
    /// events: a count alone would let large events pile up to gigabytes.
    queued_bytes: AtomicUsize,
    max_bytes: usize,
}

impl QueueOutbox {
    pub(crate) fn new(
        capacity: usize,
        max_bytes: usize,
        disconnect_when_full: bool,
    ) -> (Arc<Self>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outbox = Self {
            tx,
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
            dropped_events: AtomicU64::new(0),
            disconnect_when_full,
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
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

impl QueueOutbox {
    /// Called by the driver for each item it takes off the queue.
    pub(crate) fn taken(&self, item: &Outbound) {
        self.queued_bytes.fetch_sub(item.approx_size(), Ordering::Relaxed);
    }

    /// An event that does not fit: dropped and counted, or the session closed, by policy.
    fn refuse_event(&self) {
        if self.disconnect_when_full {
            self.overflowed.store(true, Ordering::Release);
            self.overflow.notify_one();
        } else {
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("junction_events_dropped_total").increment(1);
        }
    }
}

impl Outbox for QueueOutbox {
    fn push(&self, item: Outbound) {
        let size = item.approx_size();
        let item = match item {
            Outbound::Event(_)
                if self.queued_bytes.load(Ordering::Relaxed) + size > self.max_bytes =>
            {
                // Over the byte budget: handled like a full queue.
                return self.refuse_event();
            }
            item => item,
        };
        match self.tx.try_send(item) {
            Ok(()) => {
                self.queued_bytes.fetch_add(size, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(Outbound::Event(_))) => self.refuse_event(),
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
