//! WebSocket (RFC 6455) with the WAMP subprotocols `wamp.2.json`, `wamp.2.msgpack`,
//! `wamp.2.cbor` and their `.batched` variants. The opening handshake is answered in
//! [`crate::http`]; this module speaks the framing of an established connection, server side:
//! masked frames from the client, fragmented messages, ping, pong and the closing handshake.
//! No extension is negotiated, so the reserved bits must be zero.

use std::collections::VecDeque;
use std::task::Poll;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use junction_wire::Serializer;

use crate::config::TransportConfig;
use crate::connection::{Incoming, Link, LinkError};
use crate::input::{Input, STACK_READ};
use crate::output::Output;

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

// Buffers are allocated only while they hold something, so that an idle session keeps none:
// reading through [`Input`] (`websocket.read_buffer` bounds a read while no frame is in
// progress, never more than [`STACK_READ`]), writing through [`Output`]. The link was
// tokio-tungstenite until 2026-11-26: its read buffer was allocated when the connection opened
// and kept for its whole life, and its write buffer kept the capacity of the largest batch
// written, about 5 of the 10.4 KiB an idle session cost (docs/benchmarks.md, "Memory per idle
// session").

/// Frame opcodes (RFC 6455 §5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Close codes (RFC 6455 §7.4.1).
const NORMAL_CLOSURE: u16 = 1000;

/// Why the client's WebSocket framing failed the connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FramingError {
    /// A frame RFC 6455 does not allow (reserved bits or opcodes, an unmasked frame, a
    /// fragmented or oversized control frame, a continuation of nothing, …).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// A frame, or the frames of a fragmented message, longer than `limits.max_message_size`;
    /// refused from the frame's header, before its payload is buffered.
    #[error("a message of {length} octets is too long (the limit is {limit})")]
    TooLong { length: u64, limit: usize },
    /// A text message that is not UTF-8 (RFC 6455 §8.1).
    #[error("a text message is not UTF-8")]
    NotUtf8,
}

impl FramingError {
    /// The close code the router sends before closing (RFC 6455 §7.4.1).
    fn close_code(&self) -> u16 {
        match self {
            FramingError::Protocol(_) => 1002,
            FramingError::TooLong { .. } => 1009,
            FramingError::NotUtf8 => 1007,
        }
    }
}

/// An established WebSocket connection carrying one WAMP session.
pub(crate) struct WebSocketLink<S> {
    io: S,
    protocol: Subprotocol,
    /// The largest message accepted (`limits.max_message_size`), and the largest sent.
    max: usize,
    /// The most read at once before a frame's length is known (`websocket.read_buffer`).
    read_size: u32,
    /// Octets read and not parsed yet.
    input: Input,
    /// The frames of a fragmented message received so far: whether it is text, and the data.
    fragments: Option<(bool, BytesMut)>,
    /// Messages of a received batch not handed out yet.
    received: VecDeque<Bytes>,
    /// The outgoing batch, sent as one WebSocket message at the next flush.
    batch: BytesMut,
    /// Frames to write: unallocated between flushes.
    output: Output,
    /// The close frame to send when the connection closes.
    closing: Closing,
}

/// The close frame a link sends when its connection closes (RFC 6455 §5.5.1, §7.4).
enum Closing {
    /// Code 1000.
    Normal,
    /// The client's framing failed the connection: this code says why.
    Failed(u16),
    /// The client closed: the answer to its close frame (see [`close_reply`]).
    Answer(Vec<u8>),
    /// Sent already.
    Sent,
}

impl<S> WebSocketLink<S> {
    pub(crate) fn new(io: S, protocol: Subprotocol, config: &TransportConfig) -> Self {
        Self {
            io,
            protocol,
            max: config.max_message_size,
            read_size: config.websocket_read_buffer.clamp(1, STACK_READ) as u32,
            input: Input::default(),
            fragments: None,
            received: VecDeque::new(),
            batch: BytesMut::new(),
            output: Output::default(),
            closing: Closing::Normal,
        }
    }

    /// The header of an unmasked frame of `len` octets, and how much of the array it fills.
    fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
        let mut header = [0x80 | opcode, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        match len {
            n if n < 126 => {
                header[1] = n as u8;
                (header, 2)
            }
            n if n <= 0xFFFF => {
                header[1] = 126;
                header[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                (header, 4)
            }
            n => {
                header[1] = 127;
                header[2..10].copy_from_slice(&(n as u64).to_be_bytes());
                (header, 10)
            }
        }
    }

    /// The opcode of a data frame: text for JSON, else binary.
    ///
    /// The router's JSON is UTF-8 by construction: its encoder writes Rust strings and
    /// serde_json output, and copies payload elements out of JSON messages that were checked to
    /// be UTF-8 when they were decoded; a batch adds the ASCII separator 0x1e. Debug builds (the
    /// tests) check it in [`Self::write_frame`].
    fn data_opcode(&self) -> u8 {
        if self.protocol.serializer.is_text() { TEXT } else { BINARY }
    }

    /// Parses the frame at the head of `input` if it is all there. When only its header is,
    /// makes room for the rest so that it is read in one go.
    fn next_frame(&mut self) -> Result<Option<(Header, BytesMut)>, FramingError> {
        let Some(header) = Header::parse(self.input.bytes())? else {
            return Ok(None);
        };
        if header.opcode < CLOSE {
            let so_far = self.fragments.as_ref().map_or(0, |(_, data)| data.len() as u64);
            if so_far + header.length > self.max as u64 {
                return Err(FramingError::TooLong {
                    length: so_far + header.length,
                    limit: self.max,
                });
            }
        }
        // At most `max` (data) or 125 (control) octets: the length fits a usize.
        if !self.input.has(header.size + header.length as usize) {
            return Ok(None);
        }
        let mut payload = self.input.take(header.size, header.length as usize);
        unmask(&mut payload, header.mask);
        Ok(Some((header, payload)))
    }

    /// Handles one frame: what to hand out, if anything.
    fn on_frame(
        &mut self,
        header: Header,
        payload: BytesMut,
    ) -> Result<Option<Frame>, FramingError> {
        match header.opcode {
            TEXT | BINARY => {
                if self.fragments.is_some() {
                    return Err(FramingError::Protocol("a new message inside a fragmented one"));
                }
                let text = header.opcode == TEXT;
                if header.fin {
                    return self.message(text, payload.freeze()).map(Some);
                }
                self.fragments = Some((text, payload));
                Ok(None)
            }
            CONTINUATION => {
                let Some((text, mut data)) = self.fragments.take() else {
                    return Err(FramingError::Protocol("a continuation frame without a message"));
                };
                data.unsplit(payload);
                if header.fin {
                    return self.message(text, data.freeze()).map(Some);
                }
                self.fragments = Some((text, data));
                Ok(None)
            }
            PING => Ok(Some(Frame::Ping(payload.freeze()))),
            PONG => Ok(Some(Frame::Pong)),
            _ => Ok(Some(Frame::Close(close_reply(&payload)))),
        }
    }

    /// A whole message: its data, checked to be UTF-8 if it came as text.
    fn message(&mut self, text: bool, data: Bytes) -> Result<Frame, FramingError> {
        if text && std::str::from_utf8(&data).is_err() {
            return Err(FramingError::NotUtf8);
        }
        Ok(Frame::Message(data))
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

impl<S> WebSocketLink<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Gathers one frame (see [`Output::frame`]).
    async fn write_frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        debug_assert!(
            opcode != TEXT || std::str::from_utf8(payload).is_ok(),
            "JSON output was not UTF-8"
        );
        let (header, len) = Self::header(opcode, payload.len());
        self.output.frame(&mut self.io, &header[..len], payload).await
    }

    /// Sends a control frame and flushes it.
    async fn send_control(&mut self, opcode: u8, payload: &[u8]) -> Result<(), LinkError> {
        self.write_frame(opcode, payload).await?;
        self.output.write_out(&mut self.io).await?;
        Ok(self.io.flush().await?)
    }
}

impl<S> Link for WebSocketLink<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn buffered(&mut self) -> Result<Poll<Option<Incoming>>, LinkError> {
        loop {
            if let Some(message) = self.received.pop_front() {
                return Ok(Poll::Ready(Some(Incoming::Message(message))));
            }
            let frame = match self.next_frame() {
                Ok(Some((header, payload))) => self.on_frame(header, payload),
                Ok(None) => return Ok(Poll::Pending),
                Err(error) => Err(error),
            };
            let data = match frame {
                Ok(Some(Frame::Message(data))) => data,
                Ok(Some(Frame::Ping(payload))) => {
                    return Ok(Poll::Ready(Some(Incoming::Ping(payload))));
                }
                Ok(Some(Frame::Pong)) => return Ok(Poll::Ready(Some(Incoming::Heartbeat))),
                Ok(Some(Frame::Close(reply))) => {
                    // The closing handshake: the connection ends, and `close` answers (not
                    // here: a write could be cut short if the driver abandons the read).
                    self.closing = Closing::Answer(reply);
                    return Ok(Poll::Ready(None));
                }
                Ok(None) => continue,
                Err(error) => {
                    self.closing = Closing::Failed(error.close_code());
                    return Err(error.into());
                }
            };
            if !self.protocol.batched {
                return Ok(Poll::Ready(Some(Incoming::Message(data))));
            }
            self.unbatch(data)?;
        }
    }

    async fn fill(&mut self) -> Result<usize, LinkError> {
        Ok(self.input.fill(&mut self.io, self.read_size as usize).await?)
    }

    async fn send(&mut self, message: &[u8]) -> Result<(), LinkError> {
        if !self.protocol.batched {
            return Ok(self.write_frame(self.data_opcode(), message).await?);
        }
        if self.protocol.serializer.is_text() {
            self.batch.extend_from_slice(message);
            self.batch.extend_from_slice(&[0x1e]);
        } else {
            self.batch.extend_from_slice(&(message.len() as u32).to_be_bytes());
            self.batch.extend_from_slice(message);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.write_frame(self.data_opcode(), &batch).await?;
        }
        self.output.write_out(&mut self.io).await?;
        Ok(self.io.flush().await?)
    }

    async fn pong(&mut self, payload: Bytes) -> Result<(), LinkError> {
        self.send_control(PONG, &payload).await
    }

    async fn ping(&mut self) -> Result<(), LinkError> {
        self.send_control(PING, b"junction").await
    }

    async fn close(&mut self) {
        let _ = match std::mem::replace(&mut self.closing, Closing::Sent) {
            Closing::Normal => self.send_control(CLOSE, &NORMAL_CLOSURE.to_be_bytes()).await,
            Closing::Failed(code) => self.send_control(CLOSE, &code.to_be_bytes()).await,
            Closing::Answer(reply) => self.send_control(CLOSE, &reply).await,
            Closing::Sent => Ok(()),
        };
        let _ = self.io.shutdown().await;
    }

    fn peer_max_message(&self) -> usize {
        // WebSocket has no negotiated limit; never send more than we would accept ourselves.
        self.max
    }
}

/// What one frame amounts to.
enum Frame {
    /// A whole message (the last frame of a fragmented one, or an unfragmented one).
    Message(Bytes),
    Ping(Bytes),
    Pong,
    /// The client closes; the payload of the close frame to answer with.
    Close(Vec<u8>),
}

/// A frame header, as the client sends it (RFC 6455 §5.2).
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// The payload's length.
    length: u64,
    /// The header's own length, mask included.
    size: usize,
}

impl Header {
    /// Parses the header at the start of `input`; `None` while it is incomplete.
    fn parse(input: &[u8]) -> Result<Option<Header>, FramingError> {
        let &[first, second, ..] = input else {
            return Ok(None);
        };
        if first & 0x70 != 0 {
            return Err(FramingError::Protocol("reserved bits set without an extension"));
        }
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0F;
        match opcode {
            CONTINUATION | TEXT | BINARY => {}
            CLOSE | PING | PONG if !fin => {
                return Err(FramingError::Protocol("a fragmented control frame"));
            }
            CLOSE | PING | PONG => {}
            _ => return Err(FramingError::Protocol("a reserved opcode")),
        }
        if second & 0x80 == 0 {
            return Err(FramingError::Protocol("an unmasked frame from a client"));
        }
        let (length, at) = match second & 0x7F {
            126 => match input.get(2..4).and_then(|b| <[u8; 2]>::try_from(b).ok()) {
                Some(b) => (u64::from(u16::from_be_bytes(b)), 4),
                None => return Ok(None),
            },
            127 => match input.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(b) if u64::from_be_bytes(b) >> 63 != 0 => {
                    return Err(FramingError::Protocol("a frame length over 2^63"));
                }
                Some(b) => (u64::from_be_bytes(b), 10),
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        if opcode >= CLOSE && length > 125 {
            return Err(FramingError::Protocol("a control frame over 125 octets"));
        }
        let Some(mask) = input.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
            return Ok(None);
        };
        Ok(Some(Header { fin, opcode, mask, length, size: at + 4 }))
    }
}

/// Removes the client's masking (RFC 6455 §5.3), eight octets at a time where it can.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = [mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]];
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (b, m) in chunk.iter_mut().zip(wide) {
            *b ^= m;
        }
    }
    for (b, m) in chunks.into_remainder().iter_mut().zip(wide) {
        *b ^= m;
    }
}

/// The close frame that answers the client's (RFC 6455 §5.5.1, §7.4): its own code when it sent
/// a valid one, 1002 for an invalid code or reason, and no code when it gave none.
fn close_reply(payload: &[u8]) -> Vec<u8> {
    let code = match payload {
        [] => return Vec::new(),
        [high, low, reason @ ..] if std::str::from_utf8(reason).is_ok() => {
            match u16::from_be_bytes([*high, *low]) {
                code @ (1000..=1003 | 1007..=1014 | 3000..=4999) => code,
                _ => 1002,
            }
        }
        _ => 1002,
    };
    code.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        frame
    }

    fn config(max: usize) -> TransportConfig {
        TransportConfig { max_message_size: max, ..Default::default() }
    }

    fn link(max: usize) -> (WebSocketLink<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let protocol = Subprotocol { serializer: Serializer::Json, batched: false };
        (WebSocketLink::new(ours, protocol, &config(max)), theirs)
    }

    async fn message(link: &mut WebSocketLink<tokio::io::DuplexStream>) -> Bytes {
        match link.recv().await {
            Ok(Some(Incoming::Message(bytes))) => bytes,
            other => panic!("expected a message, got {:?}", other.map(|i| i.is_some())),
        }
    }

    #[tokio::test]
    async fn frames_of_every_length_encoding_are_unmasked() {
        let (mut link, mut peer) = link(1 << 20);
        for size in [0, 5, 125, 126, 65_535, 65_536, 200_000] {
            let text = "x".repeat(size);
            peer.write_all(&masked(0x81, text.as_bytes())).await.unwrap();
            assert_eq!(message(&mut link).await, text.as_bytes(), "{size} octets");
        }
    }

    #[tokio::test]
    async fn fragmented_message_with_a_ping_in_between_is_reassembled() {
        let (mut link, mut peer) = link(1024);
        let mut bytes = masked(0x01, b"[1,\"re");
        bytes.extend(masked(0x89, b"hi"));
        bytes.extend(masked(0x80, b"alm\"]"));
        peer.write_all(&bytes).await.unwrap();
        assert!(matches!(link.recv().await, Ok(Some(Incoming::Ping(p))) if p == "hi"));
        assert_eq!(message(&mut link).await, "[1,\"realm\"]".as_bytes());
    }

    #[tokio::test]
    async fn idle_link_holds_no_buffers() {
        let (mut link, mut peer) = link(1024);
        peer.write_all(&masked(0x81, b"[1]")).await.unwrap();
        let received = message(&mut link).await;
        link.send(b"[2]").await.unwrap();
        link.flush().await.unwrap();
        drop(received);
        assert!(link.input.bytes().is_empty());
        assert_eq!(link.output.capacity(), 0);
        let mut answer = [0u8; 5];
        peer.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, [0x81, 3, b'[', b'2', b']']);
    }

    #[tokio::test]
    async fn large_message_is_written_whole_after_the_small_ones_before_it() {
        let (mut link, mut peer) = link(1 << 20);
        let large = vec![b'y'; 70_000];
        link.send(b"[1]").await.unwrap();
        link.send(&large).await.unwrap();
        link.flush().await.unwrap();
        let mut small = [0u8; 5];
        peer.read_exact(&mut small).await.unwrap();
        assert_eq!(small, [0x81, 3, b'[', b'1', b']']);
        let mut header = [0u8; 10];
        peer.read_exact(&mut header).await.unwrap();
        assert_eq!(header[..2], [0x81, 127]);
        assert_eq!(u64::from_be_bytes(header[2..].try_into().unwrap()), 70_000);
        let mut payload = vec![0u8; 70_000];
        peer.read_exact(&mut payload).await.unwrap();
        assert_eq!(payload, large);
        assert_eq!(link.output.capacity(), 0);
    }

    #[tokio::test]
    async fn message_over_the_limit_is_refused_from_its_header() {
        let (mut link, mut peer) = link(1024);
        // Only the header is sent: the link must not wait for 4096 octets.
        peer.write_all(&masked(0x82, &[0; 4096])[..8]).await.unwrap();
        assert!(matches!(
            link.recv().await,
            Err(LinkError::WebSocket(FramingError::TooLong { length: 4096, limit: 1024 }))
        ));
        let mut fragments = masked(0x02, &[0; 1000]);
        fragments.extend(masked(0x80, &[0; 1000]));
        let (mut link, mut peer) = self::link(1024);
        peer.write_all(&fragments).await.unwrap();
        assert!(matches!(
            link.recv().await,
            Err(LinkError::WebSocket(FramingError::TooLong { length: 2000, .. }))
        ));
    }

    #[tokio::test]
    async fn text_message_that_is_not_utf8_fails_the_connection() {
        let (mut link, mut peer) = link(1024);
        peer.write_all(&masked(0x81, b"\xff")).await.unwrap();
        assert!(matches!(link.recv().await, Err(LinkError::WebSocket(FramingError::NotUtf8))));
    }

    #[tokio::test]
    async fn framing_violations_fail_the_connection() {
        let cases: [(&str, Vec<u8>); 6] = [
            ("unmasked", vec![0x81, 0x01, b'x']),
            ("rsv1", masked(0xC1, b"x")),
            ("reserved opcode", masked(0x83, b"x")),
            ("continuation of nothing", masked(0x80, b"x")),
            ("fragmented ping", masked(0x09, b"x")),
            ("ping over 125", masked(0x89, &[0; 126])),
        ];
        for (name, bytes) in cases {
            let (mut link, mut peer) = link(1024);
            peer.write_all(&bytes).await.unwrap();
            assert!(
                matches!(link.recv().await, Err(LinkError::WebSocket(FramingError::Protocol(_)))),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn close_is_answered_with_the_clients_code() {
        let (mut link, mut peer) = link(1024);
        peer.write_all(&masked(0x88, &[0x03, 0xE9, b'b', b'y', b'e'])).await.unwrap();
        assert!(matches!(link.recv().await, Ok(None)));
        link.close().await;
        let mut answer = [0u8; 4];
        peer.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, [0x88, 2, 0x03, 0xE9]);
        assert_eq!(close_reply(&[0x03, 0xEC]), 1002u16.to_be_bytes());
        assert_eq!(close_reply(&[0x03]), 1002u16.to_be_bytes());
        assert!(close_reply(&[]).is_empty());
    }
}
