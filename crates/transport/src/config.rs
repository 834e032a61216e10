//! Limits and timeouts shared by every transport.

use std::time::Duration;

/// Per-connection limits and timeouts.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// The largest message accepted from a client, in octets. RawSocket announces the largest
    /// power of two not above it; WebSocket refuses larger messages and frames.
    pub max_message_size: usize,
    /// How long a connection may take from accept to WELCOME.
    pub handshake_timeout: Duration,
    /// How long the router waits for a client's GOODBYE after sending its own.
    pub close_timeout: Duration,
    /// How many messages may wait in a session's outbound queue. When it is full, events for
    /// that session are dropped (and counted); anything else closes the session.
    pub outbound_queue: usize,
    /// The HTTP path WebSocket clients connect to.
    pub websocket_path: String,
    /// The most octets read from a WebSocket at once while no frame is in progress (at most
    /// 64 KiB); a buffer on the stack, so it costs idle connections nothing (see
    /// `websocket::WRITE_BUFFER` for how the link buffers).
    pub websocket_read_buffer: usize,
    /// Approximate bytes of events that may wait in a session's outbound queue.
    pub outbound_queue_bytes: usize,
    /// Close a session whose queue is full of events, instead of dropping the new events.
    pub disconnect_slow_consumers: bool,
    /// Silence after which the router pings the client (WebSocket ping, RawSocket PING).
    pub ping_interval: Option<Duration>,
    /// How long an unanswered ping may stay unanswered before the connection is closed.
    pub ping_timeout: Duration,
    /// Open connections allowed from one IP address.
    pub max_connections_per_ip: Option<usize>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_message_size: 16 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            outbound_queue: 4096,
            outbound_queue_bytes: 4 * 1024 * 1024,
            websocket_path: "/ws".into(),
            websocket_read_buffer: 4 * 1024,
            disconnect_slow_consumers: false,
            ping_interval: Some(Duration::from_secs(30)),
            ping_timeout: Duration::from_secs(10),
            max_connections_per_ip: None,
        }
    }
}
