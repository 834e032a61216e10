//! The scenarios. Each one sets up its sessions, lets them run, and measures a window:
//!
//! 1. every session connects and joins (and registers or subscribes) before anything is timed;
//! 2. the load starts; after `--warmup` the window opens: counters, router CPU time and
//!    (with `--callgrind`) instruction counts are read;
//! 3. the window closes after `--duration`, or when `--count` operations are done (then there
//!    is no warm-up and the window is the whole run);
//! 4. the load stops, what is in flight drains (bounded), the sessions close.
//!
//! In cross-node runs the far side (callees, subscribers) joins another node of a cluster than
//! the near side (callers, publishers), and step 1 also waits until the near side's node routes
//! to every far session: a node learns of the other nodes' registrations and subscriptions a
//! moment after they are made.
//!
//! - [`rpc`]: `rpc-latency` and `rpc-throughput` (callers × echo callees, window of calls).
//! - [`pubsub`]: `pubsub-fanout` and `pubsub-throughput` (publishers × subscribers × topics).
//! - [`sessions`]: `sessions` (idle sessions: join rate and router memory per session).

pub mod pubsub;
pub mod rpc;
pub mod sessions;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::Endpoint;
use crate::report::Outcome;
use crate::target::{Target, Usage, own_cpu};

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Load before the window opens (ignored with `count`).
    pub warmup: Duration,
    /// Length of the window (ignored with `count`).
    pub duration: Duration,
    /// Stop after this many operations instead of after `duration`.
    pub count: Option<u64>,
}

/// The operations (calls, publications) a run may still start: any number, or `--count` of
/// them; none once stopped.
#[derive(Debug, Default)]
pub(crate) struct Quota {
    remaining: Option<AtomicU64>,
    stopped: AtomicBool,
}

impl Quota {
    pub(crate) fn new(count: Option<u64>) -> Self {
        Self { remaining: count.map(AtomicU64::new), stopped: AtomicBool::new(false) }
    }

    /// Takes the right to start one more operation.
    pub(crate) fn claim(&self) -> bool {
        if self.is_stopped() {
            return false;
        }
        match &self.remaining {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    /// No operation starts after this.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// What every scenario needs to know about the system it drives.
pub struct Run<'a> {
    /// Where callers and publishers connect.
    pub endpoint: Endpoint,
    /// Where callees and subscribers connect: `endpoint`, or another node of its cluster.
    pub far: Endpoint,
    /// The system, for `/proc` readings and instruction counts.
    pub target: &'a Target,
    /// When to stop.
    pub timing: Timing,
}

impl Run<'_> {
    /// Whether the two sides of the scenario are on different routers.
    pub fn cross_node(&self) -> bool {
        self.far.addr != self.endpoint.addr
    }
}

/// How long the near side's router may take to learn of the far side's sessions.
pub const PROPAGATION: Duration = Duration::from_secs(30);

/// Readings taken when the window opened.
pub struct Window {
    started: Instant,
    router: Option<Usage>,
    client_cpu: f64,
}

impl Window {
    /// Opens the window: zeroes the instruction counters and reads CPU times.
    pub async fn open(target: &Target) -> anyhow::Result<Self> {
        if target.counts_instructions() {
            target.zero_instructions().await?;
        }
        Ok(Self { started: Instant::now(), router: target.usage(), client_cpu: own_cpu() })
    }

    /// Closes the window after `ops` operations of kind `op`, and fills in what every
    /// scenario reports.
    pub async fn close(
        self,
        target: &Target,
        op: &'static str,
        ops: u64,
    ) -> anyhow::Result<Outcome> {
        let seconds = self.started.elapsed().as_secs_f64();
        let router = target.usage();
        let client_cpu_s = own_cpu() - self.client_cpu;
        let counts =
            if target.counts_instructions() { Some(target.instructions().await?) } else { None };
        let per_op = |x: f64| (ops > 0).then(|| x / ops as f64);
        let router_cpu_s = self.router.zip(router).map(|(a, b)| b.cpu - a.cpu);
        Ok(Outcome {
            target: target.kind.name().to_owned(),
            op,
            ops,
            seconds,
            ops_per_s: if seconds > 0.0 { ops as f64 / seconds } else { 0.0 },
            router_cpu_s,
            router_cpu_us_per_op: router_cpu_s.and_then(|c| per_op(c * 1e6)),
            client_cpu_s,
            router_rss_bytes: router.map(|u| u.rss),
            instructions_per_op: counts.and_then(|c| per_op(c.instructions as f64)),
            cache_misses_per_op: counts.and_then(|c| per_op(c.cache_misses? as f64)),
            ..Outcome::default()
        })
    }
}

/// Starts the load (every session waits on `go`) and opens the window: after the warm-up, or
/// with a count, right before the load starts, so that the window holds the whole run.
pub async fn start(
    go: &tokio::sync::watch::Sender<bool>,
    target: &Target,
    timing: &Timing,
) -> anyhow::Result<Window> {
    if timing.count.is_some() {
        let window = Window::open(target).await?;
        let _ = go.send(true);
        return Ok(window);
    }
    let _ = go.send(true);
    tokio::time::sleep(timing.warmup).await;
    Window::open(target).await
}

/// Runs `f(0)` … `f(count - 1)` with at most `limit` at a time and collects the results in
/// order of completion; the first error stops everything.
pub async fn join_all<T, F, Fut>(count: usize, limit: usize, f: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    use futures_util::{StreamExt, TryStreamExt};
    futures_util::stream::iter((0..count).map(f)).buffer_unordered(limit.max(1)).try_collect().await
}
