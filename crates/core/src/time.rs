//! Time as the core sees it: always passed in by the driver, never read here, so tests can run
//! on a virtual clock.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

/// A moment as the driver read it.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Wall-clock time, for timestamps shown to clients (`created`, event history).
    pub wall: SystemTime,
    /// Monotonic time, for deadlines (call timeouts).
    pub monotonic: Instant,
}

impl Now {
    /// Reads both clocks. Only drivers call this; the core takes time as an argument.
    pub fn read() -> Self {
        Self { wall: SystemTime::now(), monotonic: Instant::now() }
    }
}

/// Wakes the driver's timer task when a deadline sooner than the ones it knows appears.
#[derive(Default)]
pub(crate) struct TimerWaker(OnceLock<Box<dyn Fn() + Send + Sync>>);

impl TimerWaker {
    /// Installs the driver's wake-up function (once).
    pub(crate) fn install(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.0.set(wake);
    }

    /// Tells the driver to recompute its next deadline.
    pub(crate) fn wake(&self) {
        if let Some(wake) = self.0.get() {
            wake();
        }
    }
}
