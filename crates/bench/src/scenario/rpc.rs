//! `rpc-latency` and `rpc-throughput`: C callers and K echo callees. Callee `k` registers
//! `bench.rpc.<k>`; each caller keeps up to `window` calls in flight and sends its calls to the
//! procedures in turn. The callee answers each INVOCATION with a YIELD carrying the same payload,
//! in order, and flushes once per batch of what it has read. `rpc-latency` is one caller, one
//! callee and a window of one.
//!
//! The callees join the far endpoint: in cross-node runs, another node than the callers'.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use junction_wire::{Message, Payload, Serializer, Uri};

use super::{PROPAGATION, Quota, Run, join_all, start};
use crate::client::{self, CallOutcome, Client};
use crate::link::Incoming;
use crate::report::{Latency, Outcome};

/// The shape of an RPC run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Params {
    /// Sessions that call.
    pub callers: usize,
    /// Sessions that answer (one procedure each).
    pub callees: usize,
    /// Calls in flight per caller.
    pub window: usize,
    /// Payload size in octets (one string argument).
    pub payload: usize,
    /// The callers' serializer.
    #[serde(serialize_with = "crate::serialize_serializer")]
    pub caller_serializer: Serializer,
    /// The callees' serializer.
    #[serde(serialize_with = "crate::serialize_serializer")]
    pub callee_serializer: Serializer,
}

/// How long a caller waits for any answer before it calls the run failed.
const STALL: Duration = Duration::from_secs(10);

/// State shared by the callers and the coordinator.
#[derive(Default)]
struct Shared {
    /// The calls still to start.
    quota: Quota,
    /// Calls answered with RESULT.
    completed: AtomicU64,
    /// Calls answered with ERROR.
    failed: AtomicU64,
    /// Latencies are recorded while the window is open.
    recording: AtomicBool,
}

/// Runs the scenario against one system.
pub async fn run(run: &Run<'_>, params: &Params) -> anyhow::Result<Outcome> {
    if params.callers == 0 || params.callees == 0 || params.window == 0 {
        bail!("callers, callees and window must be at least 1");
    }
    let endpoint = &run.endpoint;
    let cancel = CancellationToken::new();
    let mut callees = JoinSet::new();
    let procedures: Arc<[Uri]> =
        (0..params.callees).map(|k| Uri::new(format!("bench.rpc.{k}"))).collect();
    let joined = join_all(params.callees, 64, |k| {
        let procedure = procedures.get(k).cloned();
        async move {
            let mut client = Client::join(&run.far, params.callee_serializer, None).await?;
            client.register(procedure.context("procedure")?.as_str()).await?;
            Ok(client)
        }
    })
    .await?;
    for client in joined {
        callees.spawn(callee(client, cancel.clone()));
    }

    let shared = Arc::new(Shared {
        quota: Quota::new(run.timing.count),
        recording: AtomicBool::new(run.timing.count.is_some()),
        ..Shared::default()
    });
    let (go, ready) = watch::channel(false);
    let payload = client::payload(params.caller_serializer, params.payload)?;
    let mut clients =
        join_all(params.callers, 64, |_| Client::join(endpoint, params.caller_serializer, None))
            .await?;
    if run.cross_node()
        && let Some(first) = clients.first_mut()
    {
        await_procedures(first, &procedures, &payload).await?;
    }
    let mut callers = JoinSet::new();
    for (index, client) in clients.into_iter().enumerate() {
        let caller = Caller {
            client,
            first_procedure: index,
            procedures: Arc::clone(&procedures),
            payload: payload.clone(),
            window: params.window,
            shared: Arc::clone(&shared),
        };
        callers.spawn(caller.run(ready.clone()));
    }

    // Everyone is ready: go. (With a count nothing completes before the window opens.)
    let window = start(&go, run.target, &run.timing).await?;
    shared.recording.store(true, Ordering::Relaxed);
    let before = shared.completed.load(Ordering::Relaxed) * u64::from(run.timing.count.is_none());
    let mut histogram = latency_histogram();
    let mut errors = Vec::new();
    if run.timing.count.is_some() {
        // The window is the whole run: it ends when the last caller has its last answer.
        collect(&mut callers, &mut histogram, &mut errors).await;
    } else {
        tokio::time::sleep(run.timing.duration).await;
    }
    shared.recording.store(false, Ordering::Relaxed);
    let completed = shared.completed.load(Ordering::Relaxed) - before;
    let mut outcome = window.close(run.target, "call", completed).await?;
    shared.quota.stop();
    collect(&mut callers, &mut histogram, &mut errors).await;
    cancel.cancel();
    while let Some(result) = callees.join_next().await {
        if let Ok(Err(error)) = result {
            errors.push(error);
        }
    }
    if let Some(error) = errors.into_iter().next() {
        return Err(error.context("a session failed"));
    }
    outcome.errors = shared.failed.load(Ordering::Relaxed);
    outcome.latency_us = Some(Latency::from_histogram(&histogram));
    Ok(outcome)
}

/// Calls each procedure through `client` until it answers: in a cluster, the callers' node
/// learns of a registration on another node a moment after it is made.
async fn await_procedures(
    client: &mut Client,
    procedures: &[Uri],
    payload: &Payload,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + PROPAGATION;
    for procedure in procedures {
        loop {
            match client.call(procedure, payload).await? {
                Message::Result(_) => break,
                Message::Error(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                other => bail!("calling {procedure} from the callers' router: {other:?}"),
            }
        }
    }
    Ok(())
}

/// Microseconds from 1 µs to one minute, three significant digits.
fn latency_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy the library's preconditions (low >= 1,
    // high >= 2 * low, sigfig <= 5), so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

/// Waits for every caller, merging their histograms and keeping their errors.
async fn collect(
    callers: &mut JoinSet<anyhow::Result<Histogram<u64>>>,
    histogram: &mut Histogram<u64>,
    errors: &mut Vec<anyhow::Error>,
) {
    while let Some(result) = callers.join_next().await {
        match result {
            Ok(Ok(h)) => {
                let _ = histogram.add(&h);
            }
            Ok(Err(error)) => errors.push(error),
            Err(panic) => errors.push(panic.into()),
        }
    }
}

/// One caller session.
struct Caller {
    client: Client,
    /// Which procedure the first call goes to; then the next, in turn.
    first_procedure: usize,
    procedures: Arc<[Uri]>,
    payload: Payload,
    window: usize,
    shared: Arc<Shared>,
}

impl Caller {
    async fn run(mut self, mut start: watch::Receiver<bool>) -> anyhow::Result<Histogram<u64>> {
        start.wait_for(|go| *go).await?;
        let serializer = self.client.serializer;
        let mut histogram = latency_histogram();
        let mut in_flight: HashMap<u64, Instant> = HashMap::with_capacity(self.window);
        let mut next = self.first_procedure;
        loop {
            let mut sent = false;
            while in_flight.len() < self.window && self.shared.quota.claim() {
                let request = self.client.request_id();
                let procedure =
                    self.procedures.get(next % self.procedures.len()).context("no procedure")?;
                next += 1;
                let bytes = client::call(serializer, request, procedure, &self.payload)?;
                self.client.writer.feed(bytes).await?;
                in_flight.insert(request.get(), Instant::now());
                sent = true;
            }
            if sent {
                self.client.writer.flush().await?;
            }
            if in_flight.is_empty() {
                break;
            }
            let first =
                tokio::time::timeout(STALL, self.client.reader.recv()).await.with_context(
                    || format!("no answer to {} calls for {STALL:?}", in_flight.len()),
                )??;
            let mut incoming = Some(first);
            while let Some(frame) = incoming {
                match frame {
                    Incoming::Message(bytes) => match client::call_outcome(serializer, &bytes) {
                        CallOutcome::Returned(request) => {
                            if let Some(sent_at) = in_flight.remove(&request) {
                                self.shared.completed.fetch_add(1, Ordering::Relaxed);
                                if self.shared.recording.load(Ordering::Relaxed) {
                                    let micros = sent_at.elapsed().as_micros() as u64;
                                    let _ = histogram.record(micros.max(1));
                                }
                            }
                        }
                        CallOutcome::Failed(request) => {
                            in_flight.remove(&request);
                            self.shared.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        CallOutcome::Other => {}
                    },
                    Incoming::Ping(payload) => self.client.writer.pong(payload).await?,
                    Incoming::Closed => bail!("the router closed a caller's connection"),
                }
                incoming = self.client.reader.try_recv()?;
            }
        }
        self.client.leave().await;
        Ok(histogram)
    }
}

/// An echo callee: answers every INVOCATION (or CALL, through the relay) with its payload, and
/// flushes once per batch of what has arrived.
async fn callee(mut client: Client, cancel: CancellationToken) -> anyhow::Result<()> {
    let serializer = client.serializer;
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            frame = client.reader.recv() => frame?,
        };
        let mut incoming = Some(first);
        while let Some(frame) = incoming {
            match frame {
                Incoming::Message(bytes) => {
                    if let Some(answer) = client::echo(serializer, serializer.decode(&bytes)?)? {
                        client.writer.feed(answer).await?;
                    }
                }
                Incoming::Ping(payload) => client.writer.pong(payload).await?,
                Incoming::Closed => return Ok(()),
            }
            incoming = client.reader.try_recv()?;
        }
        client.writer.flush().await?;
    }
    client.leave().await;
    Ok(())
}
