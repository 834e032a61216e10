//! WebSocket (RFC 6455) with the WAMP subprotocols `wamp.2.json`, `wamp.2.msgpack`,
//! `wamp.2.cbor` and their `.batched` variants, on top of `tokio-tungstenite`. The opening
//! handshake is answered in [`crate::http`].

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use junction_wire::Serializer;

use crate::config::TransportConfig;
use crate::connection::{Incoming, Link, LinkError};

/// A WAMP WebSocket subprotocol: a serializer, plain or batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subprotocol {
    serializer: Serializer,
    /// Several WAMP messages per WebSocket message (spec, "Message Batching").
    batched: bool,
}

impl Subprotocol {
    pub(crate) fn serializer(self) -> Serializer {
        self.serializer
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.strip_suffix(".batched") {
            Some(base) => Serializer::from_subprotocol(base)
                .map(|serializer| Self { serializer, batched: true }),
            None => Serializer::from_subprotocol(name)
                .map(|serializer| Self { serializer, batched: false }),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match (self.serializer, self.batched) {
            (Serializer::Json, true) => "wamp.2.json.batched",
            (Serializer::MsgPack, true) => "wamp.2.msgpack.batched",
            (Serializer::Cbor, true) => "wamp.2.cbor.batched",
            (serializer, _) => serializer.subprotocol(),
        }
    }
}

/// Buffers are sized on purpose: the library defaults (128 KiB each) would dominate the memory of
/// an idle session.
///
/// The read buffer (`websocket.read_buffer`, 4 KiB by default) is allocated when the connection
/// opens and kept for its whole life, so it is the largest part of what an idle session costs.
/// It is also the most tungstenite reads from the socket in one call: a larger message grows the
/// buffer to its size but is read this much per system call. Against 8 KiB, 4 KiB saves 4 KiB
/// per idle session and costs RPC with 64 KiB payloads nothing measurable, with 16 KiB payloads
/// perhaps 10–25 % more router CPU per call; 2 KiB would save 2 KiB more but cost both about a
/// fifth more (docs/benchmarks.md, "Memory per idle session").
/// The write buffer is allocated as it fills (and keeps its largest size), and is written out once
/// it holds this much or at the driver's flush: it gathers a batch of messages into few system
/// calls.
const WRITE_BUFFER: usize = 8 * 1024;

pub(crate) fn ws_config(config: &TransportConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(config.websocket_read_buffer)
        .write_buffer_size(WRITE_BUFFER)
        // tungstenite panics unless the maximum exceeds the write buffer (small message limits).
        .max_write_buffer_size(config.max_message_size.saturating_mul(2).max(WRITE_BUFFER * 2))
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size))
}

/// An established WebSocket connection carrying one WAMP session.
pub(crate) struct WebSocketLink<S> {
    ws: WebSocketStream<S>,
    protocol: Subprotocol,
    max: usize,
    /// Messages of a received batch not handed out yet.
    received: VecDeque<Bytes>,
    /// The outgoing batch, sent as one WebSocket message at the next flush.
    batch: BytesMut,
}

impl<S> WebSocketLink<S> {
    pub(crate) fn new(ws: WebSocketStream<S>, protocol: Subprotocol, max: usize) -> Self {
        Self { ws, protocol, max, received: VecDeque::new(), batch: BytesMut::new() }
    }

    /// The WebSocket message carrying `payload`: a text frame for JSON, else a binary one.
    ///
    /// The text frame is built as tungstenite builds it for `Message::Text`, but without
    /// `Utf8Bytes`, whose only safe constructor from bytes checks the UTF-8 again: for every
    /// message, and for every subscriber of a shared event (~250 instructions per routed call,
    /// ~140 per delivered event). The JSON router writes UTF-8 by construction: its encoder
    /// writes Rust strings and serde_json output, and copies payload elements out of JSON
    /// messages that were checked to be UTF-8 when they were decoded; a batch adds the ASCII
    /// separator 0x1e. Debug builds (the tests) still check.
    fn frame(&self, payload: Bytes) -> WsMessage {
        if self.protocol.serializer.is_text() {
            debug_assert!(std::str::from_utf8(&payload).is_ok(), "JSON output was not UTF-8");
            WsMessage::Frame(Frame::message(payload, OpCode::Data(Data::Text), true))
        } else {
            WsMessage::Binary(payload)
        }
    }

    /// Splits a received batch into its WAMP messages; an empty or malformed batch fails the
    /// transport, as the spec asks.
    fn unbatch(&mut self, mut data: Bytes) -> Result<(), LinkError> {
        let malformed = || LinkError::Io(std::io::Error::other("malformed WAMP batch"));
        if data.is_empty() {
            return Err(malformed());
        }
        if self.protocol.serializer.is_text() {
            // Each JSON message is followed by the record separator 0x1e.
            while !data.is_empty() {
                let end = data.iter().position(|b| *b == 0x1e).ok_or_else(malformed)?;
                self.received.push_back(data.split_to(end));
                data.advance(1);
            }
        } else {
            // Each binary message is preceded by its length as a big-endian u32.
            while !data.is_empty() {
                let len = data
                    .first_chunk::<4>()
                    .map(|l| u32::from_be_bytes(*l) as usize)
                    .ok_or_else(malformed)?;
                if data.len() < 4 + len {
                    return Err(malformed());
                }
                data.advance(4);
                self.received.push_back(data.split_to(len));
            }
        }
        Ok(())
    }
}

impl<S> Link for WebSocketLink<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn recv(&mut self) -> Result<Option<Incoming>, LinkError> {
        loop {
            if let Some(message) = self.received.pop_front() {
                return Ok(Some(Incoming::Message(message)));
            }
            let data = match self.ws.next().await {
                Some(Ok(WsMessage::Binary(bytes))) => bytes,
                Some(Ok(WsMessage::Text(text))) => Bytes::from(text),
                // Pings are answered by the library on the next write or flush.
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {
                    return Ok(Some(Incoming::Heartbeat));
                }
                Some(Ok(WsMessage::Frame(_))) => continue,
                Some(Ok(WsMessage::Close(_))) | None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
            };
            if !self.protocol.batched {
                return Ok(Some(Incoming::Message(data)));
            }
            self.unbatch(data)?;
        }
    }

    async fn send(&mut self, message: Bytes) -> Result<(), LinkError> {
        if !self.protocol.batched {
            let frame = self.frame(message);
            return Ok(self.ws.feed(frame).await?);
        }
        if self.protocol.serializer.is_text() {
            self.batch.extend_from_slice(&message);
            self.batch.extend_from_slice(&[0x1e]);
        } else {
            self.batch.extend_from_slice(&(message.len() as u32).to_be_bytes());
            self.batch.extend_from_slice(&message);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        if !self.batch.is_empty() {
            let batch = self.batch.split().freeze();
            let frame = self.frame(batch);
            self.ws.feed(frame).await?;
        }
        Ok(self.ws.flush().await?)
    }

    async fn pong(&mut self, _payload: Bytes) -> Result<(), LinkError> {
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), LinkError> {
        self.ws.feed(WsMessage::Ping(Bytes::from_static(b"junction"))).await?;
        Ok(self.ws.flush().await?)
    }

    async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }

    fn peer_max_message(&self) -> usize {
        // WebSocket has no negotiated limit; never send more than we would accept ourselves.
        self.max
    }
}
