//! Remote peers' outboxes, and the forwarders that carry what they queue to the node holding
//! the session: one task per other node, so everything for a node leaves in the order the
//! router produced it (and NATS keeps a connection's order).
//!
//! A publication that reaches several subscribers on one node travels once: consecutive
//! queue items sharing one event become one message naming every recipient.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::sync::mpsc;

use junction_core::{Outbound, Outbox};
use junction_wire::message::Goodbye;
use junction_wire::{Message, Serializer, SessionId};

/// What a forwarder carries to its node.
pub(crate) enum Forward {
    /// An item for a session there.
    Item { session: SessionId, item: Outbound },
    /// A local callee's answer to an invocation that node's dealer sent.
    Answer { callee: SessionId, answer: Message },
}

/// The outbox of a remote peer: everything goes to the session's own node.
pub(crate) struct RemoteOutbox {
    session: SessionId,
    node: mpsc::UnboundedSender<Forward>,
}

impl RemoteOutbox {
    pub(crate) fn new(session: SessionId, node: mpsc::UnboundedSender<Forward>) -> Self {
        Self { session, node }
    }
}

impl Outbox for RemoteOutbox {
    fn push(&self, item: Outbound) {
        // Closed only once the node is gone, and its sessions with it.
        let _ = self.node.send(Forward::Item { session: self.session, item });
    }
}

/// The subject a node receives on.
pub(crate) fn inbox_subject(node: &str) -> String {
    format!("junction.node.{node}")
}

/// Message kinds between nodes (header `k`).
pub(crate) mod kind {
    /// An EVENT for the sessions in header `to`.
    pub(crate) const EVENT: &str = "event";
    /// A message for the session in `to` (INVOCATION, INTERRUPT, …).
    pub(crate) const MESSAGE: &str = "message";
    /// A GOODBYE: the session in `to` is to be killed.
    pub(crate) const KILL: &str = "kill";
    /// A YIELD or ERROR from the callee in `to`, for the dealer of the receiving node.
    pub(crate) const ANSWER: &str = "answer";
    /// A request the receiving node answers at once (see [`super::reach`]).
    pub(crate) const PING: &str = "ping";
}

/// How long a forwarder waits for a node's answer to one ping.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Pings unanswered before a forwarder says it cannot reach its node.
const PINGS_BEFORE_WARNING: u32 = 5;

/// Waits until the node behind `subject` answers a ping, or until `queue` has no senders left
/// (the node is forgotten). NATS drops what it cannot route: a node's inbox subscription
/// reaches the other NATS servers of a cluster a moment after it is made, and what is sent
/// before that (such as the first invocation for a callee there) would be lost, leaving a
/// call without an answer. A request that is answered shows the route works both ways.
async fn reach(
    client: &async_nats::Client,
    subject: &str,
    from: &str,
    queue: &mpsc::UnboundedReceiver<Forward>,
) {
    let mut unanswered = 0;
    while !queue.is_closed() {
        let mut headers = HeaderMap::new();
        headers.insert("k", kind::PING);
        headers.insert("from", from);
        let ping = client.request_with_headers(subject.to_owned(), headers, Bytes::new());
        match tokio::time::timeout(PING_TIMEOUT, ping).await {
            Ok(Ok(_)) if unanswered >= PINGS_BEFORE_WARNING => {
                return tracing::info!(%subject, unanswered, "another cluster node answers now");
            }
            Ok(Ok(_)) => return tracing::debug!(%subject, unanswered, "another node answers"),
            // No responders (nobody subscribed as far as our NATS server knows yet), a
            // timeout, or NATS unreachable: try again in a moment.
            _ => unanswered += 1,
        }
        if unanswered == PINGS_BEFORE_WARNING {
            tracing::warn!(%subject, "another cluster node does not answer over NATS; holding what is queued for it");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends what is queued for `to` until the node is forgotten.
pub(crate) async fn run(
    client: async_nats::Client,
    from: String,
    to: String,
    mut queue: mpsc::UnboundedReceiver<Forward>,
) {
    let subject = inbox_subject(&to);
    reach(&client, &subject, &from, &queue).await;
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, 256).await > 0 {
        let mut items = batch.drain(..).peekable();
        while let Some(first) = items.next() {
            let (kind, sessions, message) = match first {
                Forward::Item { session, item: Outbound::Event(event) } => {
                    let mut sessions = vec![session];
                    while let Some(Forward::Item { session, item: Outbound::Event(next) }) =
                        items.peek()
                        && Arc::ptr_eq(next, &event)
                    {
                        sessions.push(*session);
                        items.next();
                    }
                    let bytes = event.encoded(Serializer::MsgPack);
                    send(&client, &subject, &from, kind::EVENT, &sessions, bytes).await;
                    continue;
                }
                Forward::Item { session, item: Outbound::Message(message) } => {
                    (kind::MESSAGE, vec![session], *message)
                }
                Forward::Item { session, item: Outbound::Close(goodbye) } => {
                    (kind::KILL, vec![session], Message::from(*goodbye))
                }
                Forward::Answer { callee, answer } => (kind::ANSWER, vec![callee], answer),
            };
            let bytes = Serializer::MsgPack.encode(&message);
            send(&client, &subject, &from, kind, &sessions, bytes).await;
        }
    }
}

async fn send(
    client: &async_nats::Client,
    subject: &str,
    from: &str,
    kind: &str,
    sessions: &[SessionId],
    bytes: Result<Bytes, junction_wire::EncodeError>,
) {
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(error) => return tracing::warn!(%error, "message for another node not encodable"),
    };
    let mut headers = HeaderMap::new();
    headers.insert("k", kind);
    headers.insert("from", from);
    let to: Vec<String> = sessions.iter().map(ToString::to_string).collect();
    let to = to.join(",");
    tracing::debug!(%subject, kind, %to, "to another node");
    headers.insert("to", to.as_str());
    if let Err(error) = client.publish_with_headers(subject.to_owned(), headers, bytes).await {
        tracing::warn!(%error, %subject, "message for another node not sent");
    }
}

/// A GOODBYE read back from a kill message.
pub(crate) fn goodbye(message: Message) -> Option<Goodbye> {
    match message {
        Message::Goodbye(goodbye) => Some(goodbye),
        _ => None,
    }
}
