//! `pubsub-fanout` and `pubsub-throughput`: P publishers, S subscribers, T topics
//! (`bench.topic.<t>`). Subscriber `s` subscribes to topic `s mod T`; publisher `p` publishes to
//! the topics in turn starting at `p mod T`, without acknowledgement. `pubsub-fanout` is one
//! publisher and one topic. The subscribers join the far endpoint: in cross-node runs, another
//! node than the publishers'.
//!
//! Flow control: the publishers may be at most `window` publications per publisher ahead of the
//! subscribers, counted in deliveries (the load generator sees both ends). A router that drops
//! events would stall them, so after [`STALL`] without progress the missing deliveries are
//! written off as lost and publishing resumes. The lost count is reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use junction_wire::{Payload, Serializer, Uri};

use super::{PROPAGATION, Quota, Run, join_all, start};
use crate::client::{self, Client};
use crate::link::Incoming;
use crate::report::Outcome;

/// The shape of a pub/sub run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Params {
    /// Sessions that publish.
    pub publishers: usize,
    /// Sessions that subscribe (one topic each).
    pub subscribers: usize,
    /// Topics.
    pub topics: usize,
    /// Publications in flight per publisher.
    pub window: usize,
    /// Payload size in octets (one string argument).
    pub payload: usize,
    /// The publishers' serializer.
    #[serde(serialize_with = "crate::serialize_serializer")]
    pub publisher_serializer: Serializer,
    /// The subscribers' serializer.
    #[serde(serialize_with = "crate::serialize_serializer")]
    pub subscriber_serializer: Serializer,
}

/// Time without a delivery after which outstanding events are written off.
const STALL: Duration = Duration::from_secs(1);

/// Publications a publisher writes before it flushes.
const BATCH: usize = 64;

/// State shared by publishers, subscribers and the coordinator.
struct Shared {
    /// The publications still to start.
    quota: Quota,
    /// Deliveries owed for the publications sent so far (the sum of their topics' fan-out).
    expected: AtomicU64,
    /// Events received by all subscribers.
    delivered: AtomicU64,
    /// Deliveries written off by flow control.
    written_off: AtomicU64,
    /// Publications sent.
    published: AtomicU64,
    /// Outstanding deliveries allowed.
    budget: u64,
    /// Woken whenever subscribers receive events.
    progress: Notify,
}

impl Shared {
    fn outstanding(&self) -> u64 {
        let delivered = self.delivered.load(Ordering::Relaxed);
        let written_off = self.written_off.load(Ordering::Relaxed);
        self.expected.load(Ordering::Relaxed).saturating_sub(delivered + written_off)
    }

    fn write_off(&self) {
        let owed = self.expected.load(Ordering::Relaxed);
        let delivered = self.delivered.load(Ordering::Relaxed);
        self.written_off.fetch_max(owed.saturating_sub(delivered), Ordering::Relaxed);
    }

    /// Forgets the deliveries owed and made so far (before the load starts).
    fn reset(&self) {
        for counter in [&self.expected, &self.delivered, &self.written_off] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Waits until every owed event has arrived, or none has for [`STALL`].
    async fn drain(&self) {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.delivered.load(Ordering::Relaxed) >= self.expected.load(Ordering::Relaxed) {
                return;
            }
            if tokio::time::timeout(STALL, notified).await.is_err() {
                return;
            }
        }
    }
}

/// Runs the scenario against one system.
pub async fn run(run: &Run<'_>, params: &Params) -> anyhow::Result<Outcome> {
    if params.publishers == 0 || params.subscribers == 0 || params.topics == 0 || params.window == 0
    {
        bail!("publishers, subscribers, topics and window must be at least 1");
    }
    let endpoint = &run.endpoint;
    let topics: Arc<[(Uri, u64)]> = (0..params.topics)
        .map(|t| {
            let fanout = (params.subscribers / params.topics
                + usize::from(t < params.subscribers % params.topics))
                as u64;
            (Uri::new(format!("bench.topic.{t}")), fanout)
        })
        .collect();
    let mean_fanout = (params.subscribers as u64).div_ceil(params.topics as u64).max(1);
    let shared = Arc::new(Shared {
        expected: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        written_off: AtomicU64::new(0),
        published: AtomicU64::new(0),
        quota: Quota::new(run.timing.count),
        budget: (params.window * params.publishers) as u64 * mean_fanout,
        progress: Notify::new(),
    });

    let cancel = CancellationToken::new();
    let subscribed = join_all(params.subscribers, 64, |s| {
        let topic = topics.get(s % topics.len()).map(|(t, _)| t.clone());
        async move {
            let mut client = Client::join(&run.far, params.subscriber_serializer, None).await?;
            client.subscribe(topic.context("topic")?.as_str()).await?;
            Ok(client)
        }
    })
    .await?;
    let mut subscribers = JoinSet::new();
    for client in subscribed {
        subscribers.spawn(subscriber(client, Arc::clone(&shared), cancel.clone()));
    }

    let payload = client::payload(params.publisher_serializer, params.payload)?;
    let mut clients = join_all(params.publishers, 64, |_| {
        Client::join(endpoint, params.publisher_serializer, None)
    })
    .await?;
    if run.cross_node()
        && let Some(first) = clients.first_mut()
    {
        await_subscribers(first, &topics, &payload, &shared).await?;
    }
    let (go, ready) = watch::channel(false);
    let mut publishers = JoinSet::new();
    for (index, client) in clients.into_iter().enumerate() {
        let publisher = Publisher {
            client,
            first_topic: index,
            topics: Arc::clone(&topics),
            payload: payload.clone(),
            shared: Arc::clone(&shared),
        };
        publishers.spawn(publisher.run(ready.clone()));
    }

    let window = start(&go, run.target, &run.timing).await?;
    // With a count the window holds the whole run, from zero.
    let counting_from = u64::from(run.timing.count.is_none());
    let delivered_before = shared.delivered.load(Ordering::Relaxed) * counting_from;
    let published_before = shared.published.load(Ordering::Relaxed) * counting_from;
    let mut errors = Vec::new();
    if run.timing.count.is_some() {
        collect(&mut publishers, &mut errors).await;
        shared.drain().await;
    } else {
        tokio::time::sleep(run.timing.duration).await;
    }
    let delivered = shared.delivered.load(Ordering::Relaxed) - delivered_before;
    let published = shared.published.load(Ordering::Relaxed) - published_before;
    let mut outcome = window.close(run.target, "event", delivered).await?;
    shared.quota.stop();
    collect(&mut publishers, &mut errors).await;
    shared.drain().await;
    cancel.cancel();
    while let Some(result) = subscribers.join_next().await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => errors.push(error),
            Err(panic) => errors.push(panic.into()),
        }
    }
    if let Some(error) = errors.into_iter().next() {
        return Err(error.context("a session failed"));
    }
    outcome.publications = Some(published);
    outcome.lost = shared
        .expected
        .load(Ordering::Relaxed)
        .saturating_sub(shared.delivered.load(Ordering::Relaxed));
    Ok(outcome)
}

async fn collect(publishers: &mut JoinSet<anyhow::Result<()>>, errors: &mut Vec<anyhow::Error>) {
    while let Some(result) = publishers.join_next().await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => errors.push(error),
            Err(panic) => errors.push(panic.into()),
        }
    }
}

/// Publishes to every topic through `client` until every subscriber gets the event, then
/// forgets the counts: in a cluster, the publishers' node learns of subscriptions on another
/// node a moment after they are made.
async fn await_subscribers(
    client: &mut Client,
    topics: &[(Uri, u64)],
    payload: &Payload,
    shared: &Shared,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + PROPAGATION;
    loop {
        shared.reset();
        for (topic, fanout) in topics {
            let request = client.request_id();
            shared.expected.fetch_add(*fanout, Ordering::Relaxed);
            client
                .writer
                .send(client::publish(client.serializer, request, topic, payload)?)
                .await?;
        }
        shared.drain().await;
        let delivered = shared.delivered.load(Ordering::Relaxed);
        let expected = shared.expected.load(Ordering::Relaxed);
        if delivered >= expected {
            shared.reset();
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the publishers' router reaches {delivered} of {expected} subscribers");
        }
    }
}

/// One publisher session.
struct Publisher {
    client: Client,
    /// Which topic the first publication goes to; then the next, in turn.
    first_topic: usize,
    /// Topics and how many subscribers each has.
    topics: Arc<[(Uri, u64)]>,
    payload: Payload,
    shared: Arc<Shared>,
}

impl Publisher {
    async fn run(mut self, mut start: watch::Receiver<bool>) -> anyhow::Result<()> {
        start.wait_for(|go| *go).await?;
        let shared = Arc::clone(&self.shared);
        let serializer = self.client.serializer;
        let mut next = self.first_topic;
        'publishing: loop {
            // Wait for room in the window.
            loop {
                let notified = shared.progress.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if shared.quota.is_stopped() {
                    break 'publishing;
                }
                if shared.outstanding() < shared.budget {
                    break;
                }
                if tokio::time::timeout(STALL, notified).await.is_err() {
                    shared.write_off();
                }
            }
            let mut sent = 0;
            while sent < BATCH && shared.outstanding() < shared.budget {
                if !shared.quota.claim() {
                    self.client.writer.flush().await?;
                    break 'publishing;
                }
                let (topic, fanout) =
                    self.topics.get(next % self.topics.len()).context("no topic")?;
                next += 1;
                let request = self.client.request_id();
                let bytes = client::publish(serializer, request, topic, &self.payload)?;
                // Owed before it can possibly arrive.
                shared.expected.fetch_add(*fanout, Ordering::Relaxed);
                shared.published.fetch_add(1, Ordering::Relaxed);
                self.client.writer.feed(bytes).await?;
                sent += 1;
            }
            self.client.writer.flush().await?;
        }
        self.client.leave().await;
        Ok(())
    }
}

/// A subscriber: counts events, reports them once per batch of what has arrived.
async fn subscriber(
    mut client: Client,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let serializer = client.serializer;
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            frame = client.reader.recv() => frame?,
        };
        let mut events = 0;
        let mut incoming = Some(first);
        while let Some(frame) = incoming {
            match frame {
                Incoming::Message(bytes) => {
                    events += u64::from(client::is_event(serializer, &bytes))
                }
                Incoming::Ping(payload) => client.writer.pong(payload).await?,
                Incoming::Closed => return Ok(()),
            }
            incoming = client.reader.try_recv()?;
        }
        if events > 0 {
            shared.delivered.fetch_add(events, Ordering::Relaxed);
            shared.progress.notify_waiters();
        }
    }
    client.writer.close().await;
    Ok(())
}
