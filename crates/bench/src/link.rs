//! Framing over one TCP connection, for both ends: the load generator's clients and the relay.
//!
//! A connection is split into a [`Reader`] and a [`Writer`] so that one task can wait for frames
//! while another writes. Both transports set `TCP_NODELAY`: without it small messages wait up to
//! 40 ms for Nagle's algorithm.
//!
//! - WebSocket: `tokio-tungstenite`, one WAMP message per WebSocket message (text for JSON,
//!   binary otherwise), subprotocol `wamp.2.<serializer>`, no batching.
//! - RawSocket: the 4-octet handshake (`0x7F`, max length exponent and serializer id, two zero
//!   octets), then frames with a 4-octet header (frame kind, 24-bit length).

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use junction_wire::Serializer;
use junction_wire::rawsocket::{self, FrameHeader, FrameKind, Handshake};

/// The transport a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket on the router's WebSocket path.
    #[value(name = "websocket", alias = "ws")]
    WebSocket,
    /// RawSocket on the same TCP port.
    #[value(name = "rawsocket", alias = "rs")]
    RawSocket,
}

/// The largest message either end accepts: the RawSocket maximum, 16 MiB.
const MAX_MESSAGE: usize = rawsocket::MAX_LENGTH;

/// What a [`Reader`] hands out.
#[derive(Debug)]
pub enum Incoming {
    /// One serialized WAMP message.
    Message(Bytes),
    /// A RawSocket PING that the owner of the [`Writer`] must answer with [`Writer::pong`].
    /// (WebSocket pings are answered by the library.)
    Ping(Bytes),
    /// The peer closed the connection.
    Closed,
}

type Ws = WebSocketStream<TcpStream>;

/// The receiving half of a connection.
pub struct Reader {
    inner: ReaderInner,
}

enum ReaderInner {
    Ws(SplitStream<Ws>),
    Raw {
        half: OwnedReadHalf,
        /// Bytes read but not yet handed out; holds at most one partial frame after a parse.
        buf: BytesMut,
    },
}

/// The sending half of a connection. [`Writer::feed`] queues, [`Writer::flush`] writes.
pub struct Writer {
    inner: WriterInner,
    /// JSON goes in WebSocket text messages.
    text: bool,
}

enum WriterInner {
    Ws(SplitSink<Ws, WsMessage>),
    Raw {
        half: OwnedWriteHalf,
        /// Frames queued since the last flush, headers included.
        buf: BytesMut,
    },
}

/// Opens a client connection to `addr` (from `source` when given, to spread connections over
/// several loopback addresses) and performs the transport handshake for `serializer`.
pub async fn connect(
    addr: SocketAddr,
    transport: Transport,
    serializer: Serializer,
    ws_path: &str,
    source: Option<IpAddr>,
) -> anyhow::Result<(Reader, Writer)> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).with_context(|| format!("cannot bind {ip}"))?;
    }
    let mut stream = socket.connect(addr).await.with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    match transport {
        Transport::WebSocket => {
            let ws = ws_handshake(stream, addr, ws_path, serializer).await?;
            Ok(split_ws(ws, serializer))
        }
        Transport::RawSocket => {
            // 0xF0: we accept messages up to 2^24 octets.
            stream.write_all(&[rawsocket::MAGIC, 0xF0 | serializer.rawsocket_id(), 0, 0]).await?;
            let mut reply = [0u8; 4];
            stream.read_exact(&mut reply).await.context("RawSocket handshake reply")?;
            if reply[0] != rawsocket::MAGIC || reply[1] & 0x0F != serializer.rawsocket_id() {
                bail!("RawSocket handshake refused: {reply:02x?}");
            }
            Ok(split_raw(stream))
        }
    }
}

/// The `Sec-WebSocket-Key` of every client handshake, and the `Sec-WebSocket-Accept` it calls
/// for (RFC 6455 §1.3, whose example key this is).
///
/// The RFC asks for a random key per connection, to keep caches from answering; a load
/// generator talking to a router over loopback has no cache in between, and one fixed key
/// spares each join the random number, the base64 and the SHA-1 of the answer's check.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The client's opening handshake, written and checked by hand: a fixed request, then the
/// response's head read until its blank line (no URL parsing, no `http::Request`, no
/// handshake state machine: the join rate of the `sessions` scenario depends on what a join
/// costs the load generator, which shares the machine with the router).
async fn ws_handshake(
    mut stream: TcpStream,
    addr: SocketAddr,
    ws_path: &str,
    serializer: Serializer,
) -> anyhow::Result<Ws> {
    let request = format!(
        "GET {ws_path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {}\r\n\r\n",
        serializer.subprotocol()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let end = loop {
        if head.len() > 16 * 1024 {
            bail!("WebSocket handshake with {addr}: response head too long");
        }
        if stream.read_buf(&mut head).await? == 0 {
            bail!("WebSocket handshake with {addr}: connection closed");
        }
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let accepted = text.starts_with("HTTP/1.1 101")
        && text.lines().any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == WS_ACCEPT
            })
        });
    if !accepted {
        bail!("WebSocket handshake with {addr}{ws_path} refused: {}", text.trim_end());
    }
    let rest = head.split_off(end);
    let ws = WebSocketStream::from_partially_read(
        stream,
        rest,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        Some(ws_config()),
    )
    .await;
    Ok(ws)
}

/// Accepts a server-side connection: RawSocket when the first octet is `0x7F`, WebSocket
/// otherwise (any path, one of the three WAMP subprotocols). Returns the serializer chosen.
pub async fn accept(stream: TcpStream) -> anyhow::Result<(Reader, Writer, Serializer)> {
    stream.set_nodelay(true)?;
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        bail!("connection closed before the handshake");
    }
    if first[0] == rawsocket::MAGIC {
        let mut stream = stream;
        let mut octets = [0u8; 4];
        stream.read_exact(&mut octets).await?;
        match Handshake::parse(octets) {
            Ok((_, serializer)) => {
                stream.write_all(&Handshake::reply(serializer, MAX_MESSAGE)).await?;
                let (reader, writer) = split_raw(stream);
                Ok((reader, writer, serializer))
            }
            Err(error) => {
                if let Some(reply) = error.reply() {
                    stream.write_all(&reply).await?;
                }
                bail!("RawSocket handshake refused: {error}");
            }
        }
    } else {
        let mut chosen = None;
        // The error type is the library's callback signature, not ours to shrink.
        #[allow(clippy::result_large_err)]
        let pick = |request: &Request, mut response: Response| {
            let offered = request
                .headers()
                .get_all("Sec-WebSocket-Protocol")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .find_map(|name| Serializer::from_subprotocol(name.trim()));
            match offered {
                Some(serializer) => {
                    chosen = Some(serializer);
                    response.headers_mut().insert(
                        "Sec-WebSocket-Protocol",
                        HeaderValue::from_static(serializer.subprotocol()),
                    );
                    Ok(response)
                }
                None => {
                    let mut refusal = ErrorResponse::new(Some("no WAMP subprotocol".into()));
                    *refusal.status_mut() = StatusCode::BAD_REQUEST;
                    Err(refusal)
                }
            }
        };
        let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, pick, Some(ws_config()))
            .await?;
        let serializer = chosen.context("WebSocket handshake chose no serializer")?;
        let (reader, writer) = split_ws(ws, serializer);
        Ok((reader, writer, serializer))
    }
}

impl Reader {
    /// Waits for the next frame. Cancel-safe: a frame is never half consumed.
    pub async fn recv(&mut self) -> anyhow::Result<Incoming> {
        match &mut self.inner {
            ReaderInner::Ws(stream) => loop {
                match stream.next().await {
                    Some(Ok(WsMessage::Binary(bytes))) => return Ok(Incoming::Message(bytes)),
                    Some(Ok(WsMessage::Text(text))) => {
                        return Ok(Incoming::Message(Bytes::from(text)));
                    }
                    Some(Ok(WsMessage::Close(_))) | None => return Ok(Incoming::Closed),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return Err(error.into()),
                }
            },
            ReaderInner::Raw { half, buf } => loop {
                if let Some(incoming) = parse_raw(buf)? {
                    return Ok(incoming);
                }
                if half.read_buf(buf).await? == 0 {
                    return Ok(Incoming::Closed);
                }
            },
        }
    }

    /// A frame that is already available without waiting, if any. Lets a loop drain what
    /// arrived before it flushes its answers once.
    pub fn try_recv(&mut self) -> anyhow::Result<Option<Incoming>> {
        match &mut self.inner {
            ReaderInner::Ws(_) => self.recv().now_or_never().transpose(),
            ReaderInner::Raw { half, buf } => {
                if let Some(incoming) = parse_raw(buf)? {
                    return Ok(Some(incoming));
                }
                match half.try_read_buf(buf) {
                    Ok(0) => Ok(Some(Incoming::Closed)),
                    Ok(_) => parse_raw(buf),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

impl Writer {
    /// Queues one message; nothing is guaranteed to be written before [`Writer::flush`].
    pub async fn feed(&mut self, message: Bytes) -> anyhow::Result<()> {
        match &mut self.inner {
            WriterInner::Ws(sink) => {
                let frame = if self.text {
                    WsMessage::Text(Utf8Bytes::try_from(message).context("JSON is not UTF-8")?)
                } else {
                    WsMessage::Binary(message)
                };
                sink.feed(frame).await?;
            }
            WriterInner::Raw { buf, .. } => {
                buf.extend_from_slice(&FrameHeader::encode(FrameKind::Message, message.len()));
                buf.extend_from_slice(&message);
            }
        }
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        match &mut self.inner {
            WriterInner::Ws(sink) => sink.flush().await?,
            WriterInner::Raw { half, buf } => {
                half.write_all(buf).await?;
                buf.clear();
            }
        }
        Ok(())
    }

    /// Queues and writes one message.
    pub async fn send(&mut self, message: Bytes) -> anyhow::Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Answers a RawSocket PING.
    pub async fn pong(&mut self, payload: Bytes) -> anyhow::Result<()> {
        if let WriterInner::Raw { buf, .. } = &mut self.inner {
            buf.extend_from_slice(&FrameHeader::encode(FrameKind::Pong, payload.len()));
            buf.extend_from_slice(&payload);
        }
        self.flush().await
    }

    /// Closes the sending side (a WebSocket close frame, or a TCP shutdown).
    pub async fn close(&mut self) {
        match &mut self.inner {
            WriterInner::Ws(sink) => {
                let _ = sink.close().await;
            }
            WriterInner::Raw { half, .. } => {
                let _ = half.shutdown().await;
            }
        }
    }
}

/// WebSocket buffers sized on purpose at both ends, so that thousands of idle connections stay
/// small in the load generator and in the relay (the library defaults are 128 KiB each).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(2 * MAX_MESSAGE)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

fn split_ws(ws: Ws, serializer: Serializer) -> (Reader, Writer) {
    let (sink, stream) = ws.split();
    (
        Reader { inner: ReaderInner::Ws(stream) },
        Writer { inner: WriterInner::Ws(sink), text: serializer.is_text() },
    )
}

fn split_raw(stream: TcpStream) -> (Reader, Writer) {
    let (read, write) = stream.into_split();
    (
        Reader { inner: ReaderInner::Raw { half: read, buf: BytesMut::with_capacity(4096) } },
        Writer { inner: WriterInner::Raw { half: write, buf: BytesMut::new() }, text: false },
    )
}

/// Splits one whole frame off `buf`, or `None` when it is incomplete (the normal case between
/// reads). Reserves room for the rest of a large frame so that it is read in few calls.
fn parse_raw(buf: &mut BytesMut) -> anyhow::Result<Option<Incoming>> {
    let Some(octets) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let header = FrameHeader::parse(*octets, MAX_MESSAGE)?;
    let total = 4 + header.length;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let payload = buf.split_to(header.length).freeze();
    Ok(Some(match header.kind {
        FrameKind::Message => Incoming::Message(payload),
        FrameKind::Ping => Incoming::Ping(payload),
        FrameKind::Pong => return parse_raw(buf),
    }))
}
