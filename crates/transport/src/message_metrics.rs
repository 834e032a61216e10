//! The metrics every message updates: `junction_messages_received_total{type}`,
//! `junction_messages_sent_total{type}` and the `junction_routing_seconds` histogram.
//!
//! They are kept here, not in the `metrics` recorder, in one shard per thread (a thread takes a
//! shard when it first counts), and summed when `/metrics` is rendered ([`render`]). Through the
//! recorder, every message incremented a counter that all worker threads shared, so its cache
//! line moved between cores at each message, and every routing time went through a sample queue
//! drained once a second: together about 2.5 % of the router's time in RPC
//! (docs/benchmarks.md, "Sixth round"). A series appears once a message of its type was seen,
//! as it did through the recorder.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use junction_wire::MessageType;

/// One slot per wire code; the highest code is YIELD's, 70.
const CODES: usize = 71;

/// Upper bounds (seconds) of the routing-time buckets: 10 µs … 1 s.
const BUCKETS: [f64; 12] =
    [0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 1.0];

/// More shards than threads only wastes memory; fewer makes threads share one now and then,
/// which stays correct (the counters are atomic).
const SHARDS: usize = 32;

static SHARDS_IN_USE: [Shard; SHARDS] = [const { Shard::new() }; SHARDS];

/// Which shard the next thread takes.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: &'static Shard = &SHARDS_IN_USE[NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS];
}

/// One thread's counts. Aligned so that two shards never share a cache line.
#[repr(align(128))]
struct Shard {
    received: [AtomicU64; CODES],
    sent: [AtomicU64; CODES],
    /// Routing times per bucket (not cumulative); the last slot is above the last bound.
    routing: [AtomicU64; BUCKETS.len() + 1],
    routing_nanos: AtomicU64,
}

impl Shard {
    const fn new() -> Self {
        Self {
            received: [const { AtomicU64::new(0) }; CODES],
            sent: [const { AtomicU64::new(0) }; CODES],
            routing: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            routing_nanos: AtomicU64::new(0),
        }
    }
}

/// Adds to this thread's shard.
fn with_shard<R>(count: impl FnOnce(&Shard) -> R) {
    // During thread exit there is no shard to count into; nothing is counted then.
    let _ = SHARD.try_with(|shard| count(shard));
}

fn slot(kind: MessageType) -> usize {
    // Every code is below `CODES`; a code added above it would share the last slot.
    usize::try_from(kind.code()).map_or(CODES - 1, |code| code.min(CODES - 1))
}

/// Counts a message decoded from a client.
pub(crate) fn received(kind: MessageType) {
    with_shard(|shard| shard.received[slot(kind)].fetch_add(1, Relaxed));
}

/// Counts `n` messages of one type written to a client.
pub(crate) fn sent(kind: MessageType, n: u64) {
    with_shard(|shard| shard.sent[slot(kind)].fetch_add(n, Relaxed));
}

/// Records the time from the read that brought a received message until it was handled.
pub(crate) fn routing(elapsed: std::time::Duration) {
    let seconds = elapsed.as_secs_f64();
    let bucket = BUCKETS.iter().position(|&bound| seconds <= bound).unwrap_or(BUCKETS.len());
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    with_shard(|shard| {
        shard.routing[bucket].fetch_add(1, Relaxed);
        shard.routing_nanos.fetch_add(nanos, Relaxed);
    });
}

/// Appends the message metrics to `out`, in the Prometheus text format.
pub fn render(out: &mut String) {
    let sum = |read: &dyn Fn(&Shard) -> u64| SHARDS_IN_USE.iter().map(read).sum::<u64>();
    type Counts = fn(&Shard) -> &[AtomicU64; CODES];
    for (name, counts) in [
        ("junction_messages_received_total", (|s| &s.received) as Counts),
        ("junction_messages_sent_total", |s| &s.sent),
    ] {
        let mut series = String::new();
        for code in 0..CODES as u64 {
            let Some(kind) = MessageType::from_code(code) else { continue };
            let total = sum(&|shard| counts(shard)[slot(kind)].load(Relaxed));
            if total > 0 {
                let _ = writeln!(series, "{name}{{type=\"{}\"}} {total}", kind.name());
            }
        }
        if !series.is_empty() {
            let _ = writeln!(out, "# TYPE {name} counter\n{series}");
        }
    }
    let per_bucket: Vec<u64> = (0..=BUCKETS.len())
        .map(|bucket| sum(&|shard| shard.routing[bucket].load(Relaxed)))
        .collect();
    let count: u64 = per_bucket.iter().sum();
    if count == 0 {
        return;
    }
    let name = "junction_routing_seconds";
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, n) in BUCKETS.iter().zip(&per_bucket) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let nanos = sum(&|shard| shard.routing_nanos.load(Relaxed));
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {}", nanos as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {count}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> String {
        let mut out = String::new();
        render(&mut out);
        out
    }

    fn value(text: &str, series: &str) -> u64 {
        text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0)
    }

    // The shards are process-wide and other tests count too: only increases are checked.
    #[test]
    fn counts_from_every_thread_are_summed() {
        let series = "junction_messages_received_total{type=\"UNREGISTERED\"}";
        let before = value(&rendered(), series);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..250).for_each(|_| received(MessageType::Unregistered)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(value(&rendered(), series) >= before + 1000);
    }

    #[test]
    fn routing_times_fall_into_cumulative_buckets() {
        let (low, high) = (
            "junction_routing_seconds_bucket{le=\"0.001\"}",
            "junction_routing_seconds_bucket{le=\"+Inf\"}",
        );
        let before = rendered();
        routing(std::time::Duration::from_micros(700));
        routing(std::time::Duration::from_secs(2));
        let after = rendered();
        assert!(value(&after, low) > value(&before, low));
        assert!(value(&after, high) >= value(&before, high) + 2);
        assert_eq!(value(&after, high), value(&after, "junction_routing_seconds_count"));
    }
}
