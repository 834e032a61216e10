//! The per-connection driver shared by every transport. One task per connection owns the
//! [`Session`] and the link, and loops: read a message and hand it to the session, or drain the
//! session's outbox and write it in one batch with one flush.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use junction_core::{Error, Now, Outbound, Session, Status, TransportInfo};
use junction_wire::message::Goodbye;
use junction_wire::{Serializer, Uri};

use crate::listener::Services;
use crate::outbox::QueueOutbox;

/// What a link read from the peer.
pub(crate) enum Incoming {
    /// One serialized WAMP message.
    Message(Bytes),
    /// A RawSocket PING; the driver answers with [`Link::pong`].
    Ping(Bytes),
}

/// Why a link failed. The connection is dropped; the session is detached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("rawsocket: {0}")]
    RawSocket(#[from] junction_wire::rawsocket::FrameError),
}

/// A framed, message-oriented connection.
pub(crate) trait Link: Send {
    /// The next message, or `None` when the peer closed. Must be cancel-safe: the driver
    /// abandons it whenever there is something to write.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Incoming>, LinkError>> + Send;
    /// Buffers one message for writing.
    fn send(&mut self, message: Bytes) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Writes out what is buffered.
    fn flush(&mut self) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Answers a RawSocket PING.
    fn pong(&mut self, payload: Bytes) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Closes the connection politely.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
    /// The largest message the peer accepts.
    fn peer_max_message(&self) -> usize;
}

/// How many queued items are written before one flush.
const BATCH: usize = 128;

/// Drives a connection until it closes.
pub(crate) async fn drive(
    mut link: impl Link,
    transport: TransportInfo,
    services: &Services,
    accepted_at: Instant,
) {
    let kind = transport.kind.name();
    let open = metrics::gauge!("junction_connections_open", "transport" => kind);
    open.increment(1.0);
    let config = &*services.config;
    let shutdown = services.shutdown.token();
    let serializer = transport.serializer;
    let peer = transport.peer.clone();
    let (outbox, mut rx) = QueueOutbox::new(config.outbound_queue);
    let mut session =
        Session::new(Arc::clone(&services.router), transport, Arc::clone(&outbox) as _);
    let mut driver = Driver { serializer, closing_since: None };
    let handshake_deadline = accepted_at + config.handshake_timeout;
    let mut shutting_down = false;

    let result: Result<(), LinkError> = async {
        loop {
            let deadline = match (session.info(), driver.closing_since) {
                (_, Some(since)) => Some(since + config.close_timeout),
                (None, None) => Some(handshake_deadline),
                (Some(_), None) => None,
            };
            tokio::select! {
                Some(item) = rx.recv() => {
                    driver.write_item(&mut link, &mut session, item).await?;
                    for _ in 1..BATCH {
                        let Ok(item) = rx.try_recv() else { break };
                        driver.write_item(&mut link, &mut session, item).await?;
                    }
                    link.flush().await?;
                    if session.is_closed() {
                        return Ok(());
                    }
                }
                incoming = link.recv() => match incoming? {
                    Some(Incoming::Message(bytes)) => {
                        let started = Instant::now();
                        let status = match serializer.decode(&bytes) {
                            Ok(message) => {
                                metrics::counter!("junction_messages_received_total", "type" => message.message_type().name()).increment(1);
                                session.handle(Now::read(), message)
                            }
                            Err(error) => {
                                metrics::counter!("junction_malformed_messages_total").increment(1);
                                session.reject(Now::read(), &error)
                            }
                        };
                        metrics::histogram!("junction_routing_seconds").record(started.elapsed().as_secs_f64());
                        if status == Status::Closed {
                            return driver.finish(&mut link, &mut session, &mut rx).await;
                        }
                    }
                    Some(Incoming::Ping(payload)) => link.pong(payload).await?,
                    None => return Ok(()),
                },
                () = outbox.overflowed() => {
                    let error = Error::Canceled("the session did not read its messages fast enough".into());
                    tracing::warn!(%peer, dropped_events = outbox.dropped_events(), "closing a session whose outbound queue overflowed");
                    let _ = session.abort(Now::read(), &error);
                    return driver.finish(&mut link, &mut session, &mut rx).await;
                }
                () = shutdown.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    let goodbye = Goodbye {
                        details: junction_wire::dict! { "message" => "the router is shutting down" },
                        reason: Uri::from("wamp.close.system_shutdown"),
                    };
                    driver.write_item(&mut link, &mut session, Outbound::Close(goodbye)).await?;
                    link.flush().await?;
                    if session.is_closed() {
                        return Ok(());
                    }
                }
                () = sleep_until(deadline.unwrap_or(handshake_deadline)), if deadline.is_some() => {
                    tracing::debug!(%peer, "handshake or closing handshake timed out");
                    return Ok(());
                }
            }
        }
    }
    .await;
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
    session.transport_closed(Now::read());
    link.close().await;
    open.decrement(1.0);
}

struct Driver {
    serializer: Serializer,
    /// When the router sent its GOODBYE; the peer's reply is awaited until `close_timeout`.
    closing_since: Option<Instant>,
}

impl Driver {
    async fn write_item(
        &mut self,
        link: &mut impl Link,
        session: &mut Session,
        item: Outbound,
    ) -> Result<(), LinkError> {
        let (encoded, droppable) = match item {
            Outbound::Message(message) => {
                metrics::counter!("junction_messages_sent_total", "type" => message.message_type().name()).increment(1);
                (self.serializer.encode(&message), false)
            }
            Outbound::Event(shared) => {
                metrics::counter!("junction_messages_sent_total", "type" => "EVENT").increment(1);
                (shared.encoded(self.serializer), true)
            }
            Outbound::Close(goodbye) => {
                let Some(message) = session.close(Now::read(), goodbye) else {
                    return Ok(());
                };
                self.closing_since.get_or_insert_with(Instant::now);
                (self.serializer.encode(&message), false)
            }
        };
        let bytes = match encoded {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, "dropping a message that cannot be encoded for this peer");
                return Ok(());
            }
        };
        if bytes.len() > link.peer_max_message() {
            tracing::warn!(
                size = bytes.len(),
                limit = link.peer_max_message(),
                droppable,
                "message exceeds the peer's limit"
            );
            return Ok(());
        }
        link.send(bytes).await
    }

    /// Writes what the session queued before it closed (its ABORT or GOODBYE), then stops.
    async fn finish(
        &mut self,
        link: &mut impl Link,
        session: &mut Session,
        rx: &mut mpsc::Receiver<Outbound>,
    ) -> Result<(), LinkError> {
        while let Ok(item) = rx.try_recv() {
            self.write_item(link, session, item).await?;
        }
        link.flush().await
    }
}
