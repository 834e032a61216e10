//! Following a key-value bucket: every change, in order, from the bucket's current state on,
//! surviving what NATS does underneath.
//!
//! A JetStream watch is a consumer on the server that leads the bucket's stream. When that
//! server goes (a NATS node dies, leadership moves), the client notices only after missing
//! the consumer's idle heartbeats, some ten seconds later, and meanwhile nothing arrives. So a
//! watch that falls silent is re-created from the last revision seen, which loses and repeats
//! nothing. The directory is never silent when healthy (every node writes its heartbeat each
//! second); the configuration bucket is, so it is re-created whenever the directory's is.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::Notify;

/// How a follower learns that its watch may be dead.
pub(crate) enum Staleness {
    /// The bucket has traffic at least this often: silence means the watch is dead. Renewing
    /// it is announced on the `Notify`.
    Silence(Duration, Arc<Notify>),
    /// The bucket may be quiet for long: renew when the `Notify` says so.
    Renewed(Arc<Notify>),
}

/// Watches `bucket` from its current state on and hands each entry to `apply`, in order, on
/// a task of its own. Fails only if the first watch cannot be made.
pub(crate) async fn follow(
    bucket: kv::Store,
    staleness: Staleness,
    mut apply: impl FnMut(kv::Entry) + Send + 'static,
) -> Result<(), kv::WatchError> {
    let mut watch = bucket.watch_with_history(">").await?;
    let name = bucket.name.clone();
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            let next = match &staleness {
                Staleness::Silence(silence, _) => {
                    tokio::time::timeout(*silence, watch.next()).await.ok().flatten()
                }
                Staleness::Renewed(renew) => tokio::select! {
                    next = watch.next() => next,
                    () = renew.notified() => None,
                },
            };
            match next {
                Some(Ok(entry)) => {
                    last = entry.revision;
                    apply(entry);
                    continue;
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, bucket = %name, "watch error; renewing the watch");
                }
                None => tracing::debug!(bucket = %name, "watch silent or ended; renewing it"),
            }
            if let Staleness::Silence(_, renewed) = &staleness {
                renewed.notify_waiters();
            }
            watch = loop {
                match bucket.watch_all_from_revision(last + 1).await {
                    Ok(watch) => break watch,
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            };
        }
    });
    Ok(())
}
