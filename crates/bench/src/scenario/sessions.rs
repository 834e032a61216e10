//! `sessions`: opens N idle sessions, `concurrency` joins at a time, spread over several
//! loopback source addresses (127.0.0.1, 127.0.0.2, …) so that more than one address's worth
//! of ephemeral ports is available. Reports the join rate and the router's resident memory
//! growth per session, read from `/proc/<pid>/status` before the first and after the last join
//! (after `hold`, so that the router has settled). Idle sessions keep reading, so that they
//! answer the router's pings.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use junction_wire::Serializer;

use super::{Run, Window};
use crate::client::Client;
use crate::link::Incoming;
use crate::report::Outcome;

/// The shape of a sessions run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Params {
    /// Sessions to open.
    pub sessions: usize,
    /// Joins in progress at once.
    pub concurrency: usize,
    /// Loopback source addresses to spread connections over.
    pub source_addresses: u8,
    /// How long the sessions stay open after the last join, before memory is read.
    pub hold_ms: u64,
    /// The sessions' serializer.
    #[serde(serialize_with = "crate::serialize_serializer")]
    pub serializer: Serializer,
}

/// Runs the scenario against one system.
pub async fn run(run: &Run<'_>, params: &Params) -> anyhow::Result<Outcome> {
    if params.sessions == 0 || params.concurrency == 0 || params.source_addresses == 0 {
        bail!("sessions, concurrency and source addresses must be at least 1");
    }
    let before = run.target.usage();
    let window = Window::open(run.target).await?;
    let permits = Arc::new(Semaphore::new(params.concurrency));
    let cancel = CancellationToken::new();
    // Encoded once: every session sends the same HELLO.
    let hello = crate::client::hello(&run.endpoint, params.serializer)?;
    let (joined_tx, mut joined_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    for i in 0..params.sessions {
        let source = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (i % usize::from(params.source_addresses)) as u8,
        ));
        let endpoint = run.endpoint.clone();
        let permits = Arc::clone(&permits);
        let cancel = cancel.clone();
        let joined = joined_tx.clone();
        let serializer = params.serializer;
        let hello = hello.clone();
        tasks.spawn(async move {
            let permit = permits.acquire_owned().await;
            let client = Client::join_with(&endpoint, serializer, Some(source), hello).await;
            drop(permit);
            match client {
                Ok(client) => {
                    let _ = joined.send(Ok(()));
                    idle(client, cancel).await;
                }
                Err(error) => {
                    let _ = joined.send(Err(error));
                }
            }
        });
    }
    drop(joined_tx);
    let mut joined = 0u64;
    let mut failed = 0u64;
    let mut first_error = None;
    while let Some(result) = joined_rx.recv().await {
        match result {
            Ok(()) => joined += 1,
            Err(error) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
        if joined + failed == params.sessions as u64 {
            break;
        }
    }
    let mut outcome = window.close(run.target, "join", joined).await?;
    tokio::time::sleep(Duration::from_millis(params.hold_ms)).await;
    let after = run.target.usage();
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    if let (0, Some(error)) = (joined, &first_error) {
        bail!("no session could join: {error:#}");
    }
    if let Some(error) = &first_error {
        eprintln!("junction-bench: {failed} sessions failed to join; the first: {error:#}");
    }
    outcome.errors = failed;
    outcome.router_rss_bytes = after.map(|u| u.rss);
    outcome.rss_per_session_bytes = before
        .zip(after)
        .filter(|_| joined > 0)
        .map(|(b, a)| (a.rss as f64 - b.rss as f64) / joined as f64);
    Ok(outcome)
}

/// Keeps a session open, answering pings, until cancelled.
async fn idle(mut client: Client, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            frame = client.reader.recv() => match frame {
                Ok(Incoming::Ping(payload)) => {
                    if client.writer.pong(payload).await.is_err() {
                        return;
                    }
                }
                Ok(Incoming::Message(_)) => {}
                Ok(Incoming::Closed) | Err(_) => return,
            },
        }
    }
    client.writer.close().await;
}
