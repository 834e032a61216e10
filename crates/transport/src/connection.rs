//! The per-connection driver shared by every transport. One task per connection owns the
//! [`Session`] and the link, and loops: read a message and hand it to the session, or drain the
//! session's outbox and write it in one batch with one flush.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use junction_core::{Error, Now, Outbound, Outbox, Session, Status, TransportInfo};
use junction_wire::message::Goodbye;
use junction_wire::{EncodeBuffer, Message, MessageType, Serializer, Uri};

use crate::config::TransportConfig;
use crate::listener::Services;
use crate::message_metrics;
use crate::outbox::{Next, QueueOutbox};

/// What a link read from the peer.
pub(crate) enum Incoming {
    /// One serialized WAMP message.
    Message(Bytes),
    /// A RawSocket PING; the driver answers with [`Link::pong`].
    Ping(Bytes),
    /// A sign of life that needs no answer (a PONG, a WebSocket ping the library answers).
    Heartbeat,
}

/// Why a link failed. The connection is dropped; the session is detached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] crate::websocket::FramingError),
    #[error("rawsocket: {0}")]
    RawSocket(#[from] junction_wire::rawsocket::FrameError),
}

impl LinkError {
    /// For a message over the router's size limit, a sentence saying so.
    fn oversize(&self) -> Option<String> {
        use crate::websocket::FramingError;
        use junction_wire::rawsocket::FrameError;
        match self {
            LinkError::RawSocket(FrameError::TooLong { length, limit }) => {
                Some(format!("a message of {length} octets exceeds the limit of {limit}"))
            }
            LinkError::WebSocket(error @ FramingError::TooLong { .. }) => Some(error.to_string()),
            _ => None,
        }
    }
}

/// A framed, message-oriented connection.
pub(crate) trait Link: Send {
    /// The next message if what was read already holds a whole one (`Ready(None)`: the peer
    /// closed); `Pending` when more must be read. Does no I/O and registers no waker.
    fn buffered(&mut self) -> Result<Poll<Option<Incoming>>, LinkError>;
    /// Reads more from the peer: the octets read, 0 when the peer closed. Cancel-safe: what
    /// a read returns is kept.
    fn fill(&mut self) -> impl Future<Output = Result<usize, LinkError>> + Send;
    /// The next message, or `None` when the peer closed. Cancel-safe (the driver abandons it
    /// whenever there is something to write).
    fn recv(&mut self) -> impl Future<Output = Result<Option<Incoming>, LinkError>> + Send {
        async {
            loop {
                if let Poll::Ready(incoming) = self.buffered()? {
                    return Ok(incoming);
                }
                if self.fill().await? == 0 {
                    return Ok(None);
                }
            }
        }
    }
    /// Buffers one message for writing (copied: the caller keeps `message`).
    fn send(&mut self, message: &[u8]) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Writes out what is buffered.
    fn flush(&mut self) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Answers a RawSocket PING.
    fn pong(&mut self, payload: Bytes) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Sends a ping (WebSocket ping or RawSocket PING) and flushes it.
    fn ping(&mut self) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Closes the connection politely.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
    /// The largest message the peer accepts.
    fn peer_max_message(&self) -> usize;
}

/// How many queued items are written before one flush.
const BATCH: usize = 128;

/// What the driver loop does after an event.
enum Flow {
    Continue,
    /// Stop: the session ended (its last messages are written) or the connection must go.
    Stop,
}

/// Drives a connection until it closes.
///
/// Not an `async fn`: the set-up runs when it is called and the future only owns the
/// [`Driver`]. An `async fn` would keep its arguments (the link, the transport description)
/// in the task beside the driver they were moved into, for the whole life of the connection.
pub(crate) fn drive<'a>(
    link: impl Link + 'a,
    transport: TransportInfo,
    services: &'a Services,
    accepted_at: Instant,
) -> impl Future<Output = ()> + Send + 'a {
    let open = metrics::gauge!("junction_connections_open", "transport" => transport.kind.name());
    open.increment(1.0);
    let config = &*services.config;
    let outbox = Arc::new(QueueOutbox::new(
        config.outbound_queue,
        config.outbound_queue_bytes,
        config.disconnect_slow_consumers,
    ));
    let serializer = transport.serializer;
    let peer = transport.peer.clone();
    // Every log line of the connection carries the peer, and once joined the session and realm.
    let span = tracing::info_span!("session", %peer, id = Empty, realm = Empty);
    let session = Session::new(Arc::clone(&services.router), transport, Arc::clone(&outbox) as _);
    let mut driver = Driver {
        link,
        session,
        queue: outbox,
        serializer,
        config,
        closing_since: None,
        span: span.clone(),
        joined: false,
        events_written: 0,
    };
    async move {
        if let Err(error) = driver.run(services.shutdown.token(), accepted_at).await {
            tracing::debug!(%error, "connection ended with an error");
        }
        driver.queue.close();
        driver.session.transport_closed(Now::read());
        driver.link.close().await;
        if driver.joined {
            tracing::info!("session left");
        }
        open.decrement(1.0);
    }
    .instrument(span)
}

/// One connection's state: the link, the session, and the session's outbound queue.
struct Driver<'a, L> {
    link: L,
    session: Session,
    /// The session's outbound queue (the session holds it too, as its `Outbox`).
    queue: Arc<QueueOutbox>,
    serializer: Serializer,
    config: &'a TransportConfig,
    /// When the router sent its GOODBYE; the peer's reply is awaited until `close_timeout`.
    closing_since: Option<Instant>,
    /// The connection's log span, given the session id and realm once joined.
    span: tracing::Span,
    /// Whether the span already names the session.
    joined: bool,
    /// Events written since the last flush. Counted into the metric once per batch: one shared
    /// counter incremented per event was a cache line the worker threads fought over.
    events_written: u64,
}

impl<L: Link> Driver<'_, L> {
    /// The loop: handle what the peer sends, write what the session queued, answer pings,
    /// watch the deadlines (handshake, closing, liveness) and shutdown.
    async fn run(
        &mut self,
        shutdown: &CancellationToken,
        accepted_at: Instant,
    ) -> Result<(), LinkError> {
        let queue = Arc::clone(&self.queue);
        let config = self.config;
        let handshake_deadline = accepted_at + config.handshake_timeout;
        let mut shutting_down = false;
        // Liveness: the last time the peer was heard from, and the ping awaiting its answer.
        let mut heard = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        // Made once, not once per turn of the loop: a timer armed and dropped per message
        // (or per batch of events) is two trips through the runtime's timer wheel under its
        // lock, and a fresh `cancelled()` joins and leaves the waiters of the token every
        // connection shares. The liveness timer is not moved when the peer is heard from: when
        // it fires early, it is set again to the deadline that holds by then.
        let liveness = sleep_until(liveness_due(config, heard, ping_sent).unwrap_or(heard));
        tokio::pin!(liveness);
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        // The link, the liveness timer and the shutdown future are polled only when they may
        // have progressed (see `Gate`), not every time the task wakes for something else.
        let (reading, ticking, stopping) = (Gate::new(), Gate::new(), Gate::new());
        loop {
            let deadline = match (self.session.info(), self.closing_since) {
                (_, Some(since)) => Some(since + config.close_timeout),
                (None, None) => Some(handshake_deadline),
                (Some(_), None) => None,
            };
            let flow = tokio::select! {
                next = queue.next() => match next {
                    Next::Item(item) => self.write_batch(item).await?,
                    Next::Overflowed => {
                        let error = Error::Canceled("the session did not read its messages fast enough".into());
                        tracing::warn!(dropped_events = queue.dropped_events(), "closing a session whose outbound queue overflowed");
                        let _ = self.session.abort(Now::read(), &error);
                        self.finish().await?
                    }
                },
                incoming = reading.pass(self.link.recv()) => {
                    // Read once for the liveness check, the session and the routing time.
                    let now = Now::read();
                    heard = Instant::from_std(now.monotonic);
                    ping_sent = None;
                    self.on_read(incoming, now).await?
                }
                () = ticking.pass(liveness.as_mut()), if config.ping_interval.is_some() => {
                    let now = Instant::now();
                    match liveness_due(config, heard, ping_sent) {
                        Some(due) if due > now => liveness.as_mut().reset(due),
                        _ if ping_sent.is_some() => {
                            metrics::counter!("junction_ping_timeouts_total").increment(1);
                            tracing::debug!("closing a connection that did not answer a ping");
                            return Ok(());
                        }
                        _ => {
                            self.link.ping().await?;
                            ping_sent = Some(now);
                            liveness.as_mut().reset(now + config.ping_timeout);
                        }
                    }
                    Flow::Continue
                }
                () = stopping.pass(cancelled.as_mut()), if !shutting_down => {
                    shutting_down = true;
                    let goodbye = Goodbye {
                        details: junction_wire::dict! { "message" => "the router is shutting down" },
                        reason: Uri::from("wamp.close.system_shutdown"),
                    };
                    self.write_batch(Outbound::close(goodbye)).await?
                }
                // A timer only when there is a deadline (the future is made even when the
                // branch is disabled).
                () = sleep_until_some(deadline), if deadline.is_some() => {
                    tracing::debug!("handshake or closing handshake timed out");
                    Flow::Stop
                }
            };
            if let Flow::Stop = flow {
                return Ok(());
            }
        }
    }

    /// Handles what the link read at `now`, and then the further messages that the same read
    /// brought (up to [`BATCH`]): one turn of the loop, and one reading of the clocks, for
    /// all of them.
    async fn on_read(
        &mut self,
        mut incoming: Result<Option<Incoming>, LinkError>,
        now: Now,
    ) -> Result<Flow, LinkError> {
        for _ in 0..BATCH {
            let flow = match incoming {
                Ok(incoming) => self.on_incoming(incoming, now).await?,
                Err(error) => match error.oversize() {
                    // Say why before closing: ABORT names the size and the limit.
                    Some(why) => {
                        let _ = self.session.abort(now, &Error::ProtocolViolation(why));
                        return self.finish().await;
                    }
                    None => return Err(error),
                },
            };
            if let Flow::Stop = flow {
                return Ok(Flow::Stop);
            }
            incoming = match self.link.buffered() {
                Ok(Poll::Ready(next)) => Ok(next),
                Ok(Poll::Pending) => return Ok(Flow::Continue),
                Err(error) => Err(error),
            };
        }
        Ok(Flow::Continue)
    }

    /// Hands a message from the peer, which arrived at `now`, to the session, or answers a
    /// RawSocket PING.
    async fn on_incoming(
        &mut self,
        incoming: Option<Incoming>,
        now: Now,
    ) -> Result<Flow, LinkError> {
        match incoming {
            Some(Incoming::Message(bytes)) => {
                let status = match self.serializer.decode(&bytes) {
                    Ok(message) => {
                        message_metrics::received(message.message_type());
                        self.session.handle(now, message)
                    }
                    Err(error) => {
                        metrics::counter!("junction_malformed_messages_total").increment(1);
                        self.session.reject(now, &error)
                    }
                };
                message_metrics::routing(now.monotonic.elapsed());
                self.note_joined();
                if status == Status::Closed {
                    return self.finish().await;
                }
                Ok(Flow::Continue)
            }
            Some(Incoming::Ping(payload)) => {
                self.link.pong(payload).await?;
                Ok(Flow::Continue)
            }
            Some(Incoming::Heartbeat) => Ok(Flow::Continue),
            None => Ok(Flow::Stop),
        }
    }

    /// Names the session in the log span once it has joined a realm.
    fn note_joined(&mut self) {
        if self.joined {
            return;
        }
        if let Some(info) = self.session.info() {
            self.joined = true;
            self.span.record("id", info.id.get());
            self.span.record("realm", info.realm.as_str());
            tracing::info!(authid = %info.authid, authrole = %info.authrole, "session joined");
        }
    }

    /// Writes `first` and whatever else is queued (up to [`BATCH`]), then flushes once. When
    /// the queue runs dry the task yields once before flushing: the runtime then runs the
    /// other tasks that are ready, and what they route to this session meanwhile goes out
    /// with the same system call (under load a quarter fewer writes per routed call, and
    /// a tenth more calls per second; docs/benchmarks.md, "Seventh round").
    async fn write_batch(&mut self, first: Outbound) -> Result<Flow, LinkError> {
        self.write_item(first).await?;
        let mut written = 1;
        let mut yielded = false;
        while written < BATCH {
            // An overflow stays flagged: the loop handles it next.
            match self.queue.try_next() {
                Some(Next::Item(item)) => {
                    self.write_item(item).await?;
                    written += 1;
                }
                _ if yielded => break,
                _ => {
                    tokio::task::yield_now().await;
                    yielded = true;
                }
            }
        }
        self.link.flush().await?;
        self.count_events();
        Ok(if self.session.is_closed() { Flow::Stop } else { Flow::Continue })
    }

    async fn write_item(&mut self, item: Outbound) -> Result<(), LinkError> {
        let limit = self.link.peer_max_message();
        let message = match item {
            Outbound::Event(shared) => {
                // Events that cannot be written are lost, and counted; nothing waits on them.
                match shared.encoded(self.serializer) {
                    Ok(bytes) if bytes.len() <= limit => {
                        self.events_written += 1;
                        return self.link.send(&bytes).await;
                    }
                    Ok(bytes) => tracing::debug!(
                        size = bytes.len(),
                        limit,
                        "event larger than the peer accepts"
                    ),
                    Err(error) => tracing::debug!(%error, "event cannot be encoded for this peer"),
                }
                metrics::counter!("junction_undeliverable_total", "type" => "EVENT").increment(1);
                return Ok(());
            }
            Outbound::Message(message) => *message,
            Outbound::Close(goodbye) => {
                let Some(message) = self.session.close(Now::read(), *goodbye) else {
                    return Ok(());
                };
                self.closing_since.get_or_insert_with(Instant::now);
                message
            }
        };
        let kind = message.message_type();
        let mut encoded = EncodeBuffer::take();
        let failure = match self.serializer.encode_into(&message, &mut encoded) {
            Ok(()) if encoded.len() <= limit => {
                message_metrics::sent(kind, 1);
                return self.link.send(&encoded).await;
            }
            // A WELCOME too big for a client that asked for small messages: the essentials only.
            // Boxed: a rare path whose future would otherwise make every connection's task larger.
            Ok(()) if matches!(message, Message::Welcome(_)) => {
                return Box::pin(self.send_minimal_welcome(message, limit)).await;
            }
            Ok(()) => Error::PayloadSizeExceeded(format!(
                "a {} of {} octets exceeds the receiver's limit of {limit}",
                kind.name(),
                encoded.len()
            )),
            Err(error) => Error::InvalidArgument(format!(
                "the payload cannot be sent to the receiver: {error}"
            )),
        };
        // Never silently: the call this message belongs to ends with an error instead.
        tracing::warn!(%failure, "undeliverable message");
        metrics::counter!("junction_undeliverable_total", "type" => kind.name()).increment(1);
        self.session.undeliverable(&message, &failure);
        Ok(())
    }

    async fn send_minimal_welcome(
        &mut self,
        message: Message,
        limit: usize,
    ) -> Result<(), LinkError> {
        let Message::Welcome(mut welcome) = message else { return Ok(()) };
        welcome.details.remove("agent");
        let bare = junction_wire::dict! { "broker" => junction_wire::Dict::new(), "dealer" => junction_wire::Dict::new() };
        welcome.details.insert("roles".into(), junction_wire::Value::Dict(bare));
        match self.serializer.encode(&welcome.into()) {
            Ok(bytes) if bytes.len() <= limit => self.link.send(&bytes).await,
            _ => Ok(()),
        }
    }

    /// Writes what the session queued before it closed (its ABORT or GOODBYE), then stops.
    async fn finish(&mut self) -> Result<Flow, LinkError> {
        while let Some(item) = self.queue.try_item() {
            self.write_item(item).await?;
        }
        self.link.flush().await?;
        self.count_events();
        Ok(Flow::Stop)
    }

    /// Adds the events written since the last count to `junction_messages_sent_total`.
    fn count_events(&mut self) {
        let events = std::mem::take(&mut self.events_written);
        if events > 0 {
            message_metrics::sent(MessageType::Event, events);
        }
    }
}

/// When the liveness check is due: the ping's answer is late, or the peer has been silent for
/// `ping_interval`. `None` without pings.
fn liveness_due(
    config: &TransportConfig,
    heard: Instant,
    ping_sent: Option<Instant>,
) -> Option<Instant> {
    match (ping_sent, config.ping_interval) {
        (Some(sent), _) => Some(sent + config.ping_timeout),
        (None, Some(interval)) => Some(heard + interval),
        (None, None) => None,
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Lets a future be polled only when it may have progressed: on the first poll, after it was
/// ready (a link may hold more messages), and after its own waker fired.
///
/// The driver's task wakes for every message queued for the session and every message from
/// the peer, and `select!` then polls its other branches too. Polling the link when nothing
/// arrived is not free (a read attempt on the socket: for a subscriber, once per batch of
/// events), polling a `CancellationToken`'s future takes two locks that every connection
/// shares, and polling the liveness timer reads its state in the runtime's timer wheel. Behind
/// a gate, a wake-up that is not the future's own costs an atomic swap. A timer reset after it
/// fired is polled again, because a gate stays open after its future was ready. Correct for
/// any future that keeps the contract of
/// `Future::poll`: when it returns `Pending` it has arranged for the waker it was given (the
/// gate's) to be woken.
struct Gate {
    signal: Arc<Signal>,
    /// Wakes `signal`: the waker the gated futures are given.
    waker: Waker,
}

/// Set when a gated future's waker fires; wakes the task that polls the gate.
struct Signal {
    open: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.open.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    fn new() -> Self {
        let signal = Arc::new(Signal { open: AtomicBool::new(true), task: AtomicWaker::new() });
        let waker = Waker::from(Arc::clone(&signal));
        Self { signal, waker }
    }

    /// `future`, polled only while the gate is open.
    async fn pass<F: Future>(&self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            // Registered before the flag is read, so a wake-up in between is not lost.
            self.signal.task.register(cx.waker());
            if !self.signal.open.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
            let ready = future.as_mut().poll(&mut Context::from_waker(&self.waker));
            if ready.is_ready() {
                self.signal.open.store(true, Ordering::Release);
            }
            ready
        })
        .await
    }
}
