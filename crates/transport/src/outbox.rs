//! The bounded outbound queue behind each session.
//!
//! A `VecDeque` behind a mutex, not tokio's bounded channel: the channel allocates its shared
//! state and a first block of 32 slots when it is created, about 1 KiB that every idle session
//! kept. This queue allocates when something is queued, and gives large allocations back once
//! it is drained (docs/benchmarks.md, "Memory per idle session").

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;

use junction_core::{Outbound, Outbox};

/// Slots an empty queue may keep: small enough to cost an idle session little, large enough
/// that a session exchanging a few messages at a time does not allocate for each.
const KEEP_SLOTS: usize = 8;

/// A session's outbound queue: the core pushes (never blocking), the driver takes.
///
/// Aligned on a cache line, with everything a push reads or writes under the lock, so that
/// queuing an item touches one line of the queue (and its slot): at thousands of subscribers,
/// fan-out is bound by the lines it touches per subscriber, not by instructions.
#[repr(C, align(64))]
pub(crate) struct QueueOutbox {
    /// A std mutex: held for a push or a pop only, never across an `.await`, and uncontended
    /// unless another thread routes to this session at that very moment.
    state: Mutex<State>,
    /// Wakes the driver when an item was queued or the queue overflowed. Not tokio's `Notify`:
    /// the driver's loop makes a new `next()` future at every turn, and each `Notify` waiter
    /// joined and left a list under a lock (about 400 instructions per routed call).
    ready: AtomicWaker,
    /// Events dropped because the session did not keep up.
    dropped_events: AtomicU64,
}

/// 56 octets: with the lock, one cache line.
struct State {
    items: VecDeque<Outbound>,
    /// Approximate bytes waiting.
    queued_bytes: usize,
    /// Approximate bytes of events that may wait (see `Outbound::approx_size`): a count alone
    /// would let large events pile up to gigabytes.
    max_bytes: usize,
    /// How many items may wait (fixed; kept here, beside what a push updates).
    capacity: u32,
    /// Set when an item that may not be dropped did not fit: the driver closes the session.
    overflowed: bool,
    /// The driver is gone: pushes are discarded.
    closed: bool,
    /// Close the session instead of dropping events when the queue is full.
    disconnect_when_full: bool,
}

/// What the driver takes off the queue.
pub(crate) enum Next {
    Item(Outbound),
    /// An item that may not be dropped did not fit: the session must be closed.
    Overflowed,
}

impl QueueOutbox {
    pub(crate) fn new(capacity: usize, max_bytes: usize, disconnect_when_full: bool) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                queued_bytes: 0,
                max_bytes,
                capacity: u32::try_from(capacity).unwrap_or(u32::MAX).max(1),
                overflowed: false,
                closed: false,
                disconnect_when_full,
            }),
            ready: AtomicWaker::new(),
            dropped_events: AtomicU64::new(0),
        }
    }

    /// Waits for the next item, or for the overflow (which comes first). Cancel-safe: an item
    /// is taken only by the poll that returns it.
    pub(crate) fn next(&self) -> impl Future<Output = Next> + '_ {
        std::future::poll_fn(|cx| {
            // Registered before the queue is looked at, so that a push in between wakes us.
            self.ready.register(cx.waker());
            self.try_next().map_or(Poll::Pending, Poll::Ready)
        })
    }

    /// The next item if one is waiting (or the overflow).
    pub(crate) fn try_next(&self) -> Option<Next> {
        let mut state = self.lock();
        if state.overflowed {
            return Some(Next::Overflowed);
        }
        let item = state.items.pop_front()?;
        state.queued_bytes = state.queued_bytes.saturating_sub(item.approx_size());
        if state.items.is_empty() && state.items.capacity() > KEEP_SLOTS {
            state.items = VecDeque::new();
        }
        Some(Next::Item(item))
    }

    /// The next item if one is waiting, ignoring an overflow (for the last writes before the
    /// connection closes).
    pub(crate) fn try_item(&self) -> Option<Outbound> {
        let mut state = self.lock();
        let item = state.items.pop_front()?;
        state.queued_bytes = state.queued_bytes.saturating_sub(item.approx_size());
        Some(item)
    }

    /// The driver is done: what is queued is dropped, and so is anything pushed later.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.items = VecDeque::new();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while the lock is held leaves a queue that is still consistent (each
        // operation is a single push or pop), so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Outbox for QueueOutbox {
    fn push(&self, item: Outbound) {
        let size = item.approx_size();
        let event = matches!(item, Outbound::Event(_));
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let full = state.items.len() >= state.capacity as usize;
        if event && (full || state.queued_bytes + size > state.max_bytes) {
            // Over the count or the byte budget: dropped and counted, or the session closed,
            // by policy.
            if !state.disconnect_when_full {
                drop(state);
                self.dropped_events.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("junction_events_dropped_total").increment(1);
                return;
            }
            state.overflowed = true;
        } else if full {
            state.overflowed = true;
        } else {
            state.items.push_back(item);
            state.queued_bytes += size;
            if state.items.len() > 1 {
                // The driver waits only on an empty queue: it will take this item with the
                // ones before it, and needs no wake-up (nor a stale permit after it drained).
                return;
            }
        }
        drop(state);
        self.ready.wake();
    }

    fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use junction_wire::message::Goodbye;
    use junction_wire::{Dict, Uri};

    use super::*;

    fn goodbye() -> Outbound {
        Outbound::close(Goodbye { details: Dict::new(), reason: Uri::from("wamp.close.normal") })
    }

    #[test]
    fn lock_and_state_fill_one_cache_line() {
        assert!(std::mem::size_of::<Mutex<State>>() <= 64);
        assert_eq!(std::mem::offset_of!(QueueOutbox, state), 0);
        assert_eq!(std::mem::align_of::<QueueOutbox>(), 64);
    }

    #[test]
    fn new_queue_allocates_nothing_and_gives_large_allocations_back() {
        let queue = QueueOutbox::new(4096, 1 << 20, false);
        assert_eq!(queue.lock().items.capacity(), 0);
        for _ in 0..100 {
            queue.push(goodbye());
        }
        while let Some(Next::Item(_)) = queue.try_next() {}
        assert_eq!(queue.lock().items.capacity(), 0);
    }

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn driver_waiting_on_an_empty_queue_is_woken_once_and_takes_what_followed() {
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};
        let wakes = std::sync::Arc::new(Wakes::default());
        let waker = Waker::from(std::sync::Arc::clone(&wakes));
        let woken = || wakes.0.load(Ordering::Relaxed);
        let queue = QueueOutbox::new(8, 1 << 20, false);
        let mut cx = Context::from_waker(&waker);
        let mut next = pin!(queue.next());
        assert!(next.as_mut().poll(&mut cx).is_pending());
        queue.push(goodbye());
        assert_eq!(woken(), 1, "the first item wakes the driver");
        queue.push(goodbye());
        assert_eq!(woken(), 1, "the second is taken with the first: no wake-up");
        assert!(matches!(next.as_mut().poll(&mut cx), Poll::Ready(Next::Item(_))));
        assert!(matches!(queue.try_next(), Some(Next::Item(_))));
        assert!(queue.try_next().is_none());
        let mut again = pin!(queue.next());
        assert!(again.as_mut().poll(&mut cx).is_pending());
        queue.push(goodbye());
        assert_eq!(woken(), 2);
        assert!(matches!(again.as_mut().poll(&mut cx), Poll::Ready(Next::Item(_))));
    }

    #[test]
    fn item_that_does_not_fit_overflows_the_queue() {
        let queue = QueueOutbox::new(2, 1 << 20, false);
        queue.push(goodbye());
        queue.push(goodbye());
        queue.push(goodbye());
        assert!(matches!(queue.try_next(), Some(Next::Overflowed)));
        assert!(queue.try_item().is_some());
    }

    #[test]
    fn closed_queue_discards_pushes() {
        let queue = QueueOutbox::new(2, 1 << 20, false);
        queue.close();
        queue.push(goodbye());
        assert!(queue.try_next().is_none());
    }
}
