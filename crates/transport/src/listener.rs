//! Accept loops. The universal TCP listener serves RawSocket, WebSocket and HTTP on one port: a
//! RawSocket handshake starts with `0x7F`, which no HTTP request can.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use junction_core::session::ChannelBindings;
use junction_core::{Router, TransportInfo, TransportKind};
use junction_wire::rawsocket::MAGIC;

use crate::config::TransportConfig;
use crate::connection::drive;
use crate::http::{self, HttpEndpoints};
use crate::rawsocket;
use crate::tls::{Prefixed, Tls};

/// Graceful shutdown: a token every accept loop and connection watches, and a tracker of the
/// connection tasks so the caller can wait for them to finish.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A shutdown handle nobody has triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops accepting and asks every session to close (GOODBYE `wamp.close.system_shutdown`).
    pub fn begin(&self) {
        self.token.cancel();
        self.tracker.close();
    }

    /// Waits until every connection has ended, at most `grace`. Returns whether they all did.
    pub async fn wait(&self, grace: Duration) -> bool {
        timeout(grace, self.tracker.wait()).await.is_ok()
    }

    /// The number of open connections.
    pub fn connections(&self) -> usize {
        self.tracker.len()
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }
}

/// Everything a connection needs, shared by all of them.
#[derive(Clone)]
pub struct Services {
    /// The router sessions attach to.
    pub router: Arc<Router>,
    /// Limits and timeouts.
    pub config: Arc<TransportConfig>,
    /// The operator endpoints served over HTTP.
    pub http: Arc<HttpEndpoints>,
    /// Graceful shutdown.
    pub shutdown: Shutdown,
}

/// Serves WebSocket, RawSocket and HTTP on `listener` until shutdown begins.
pub async fn serve_tcp(listener: TcpListener, services: Services) {
    serve(listener, services, None).await;
}

/// Serves WebSocket and RawSocket over TLS (WSS, RawSocket-TLS) and HTTPS on `listener`.
pub async fn serve_tls(listener: TcpListener, services: Services, tls: Arc<Tls>) {
    serve(listener, services, Some(tls)).await;
}

async fn serve(listener: TcpListener, services: Services, tls: Option<Arc<Tls>>) {
    let per_ip = Arc::new(PerIp::default());
    loop {
        let accepted = tokio::select! {
            () = services.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Small WAMP messages must not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
                let slot = per_ip.enter(peer.ip(), services.config.max_connections_per_ip);
                let (services, tls) = (services.clone(), tls.clone());
                services.shutdown.tracker().clone().spawn(async move {
                    match slot {
                        Some(_slot) => {
                            serve_tcp_connection(stream, peer.to_string(), services, tls).await
                        }
                        None => refuse_connection(stream, &services.config).await,
                    }
                });
            }
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Open connections per IP address, for `max_connections_per_ip`.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; leaving the count when dropped.
struct Slot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// Counts a new connection from `ip`, or refuses it (`None`) when `limit` is reached.
    fn enter(self: &Arc<Self>, ip: IpAddr, limit: Option<usize>) -> Option<Slot> {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(ip).or_default();
        if limit.is_some_and(|max| *count >= max) {
            metrics::counter!("junction_limit_refusals_total", "limit" => "connections per IP")
                .increment(1);
            tracing::info!(%ip, "refused a connection: too many from this address");
            return None;
        }
        *count += 1;
        Some(Slot { per_ip: Arc::clone(self), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.per_ip.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// RawSocket handshake error 4, "maximum connection count reached".
const HANDSHAKE_CONNECTION_LIMIT: [u8; 4] = [MAGIC, 0x40, 0, 0];

/// Turns away a connection over the per-IP limit with the answer its protocol understands:
/// RawSocket handshake error 4 ("maximum connection count reached"), or HTTP 503.
async fn refuse_connection(mut stream: TcpStream, config: &TransportConfig) {
    let mut first = [0u8; 1];
    if !matches!(timeout(config.handshake_timeout, stream.peek(&mut first)).await, Ok(Ok(1))) {
        return;
    }
    let reply: &[u8] = if first[0] == MAGIC {
        let mut handshake = [0u8; 4];
        let _ = timeout(config.handshake_timeout, stream.read_exact(&mut handshake)).await;
        &HANDSHAKE_CONNECTION_LIMIT
    } else {
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 39\r\nConnection: close\r\n\r\ntoo many connections from this address\n"
    };
    let _ = stream.write_all(reply).await;
    let _ = stream.shutdown().await;
}

async fn serve_tcp_connection(
    stream: TcpStream,
    peer: String,
    services: Services,
    tls: Option<Arc<Tls>>,
) {
    let accepted_at = Instant::now();
    let handshake = services.config.handshake_timeout;
    // Until the first byte is known the connection is nobody's: shutdown simply drops it.
    // After that the session's driver handles shutdown itself (GOODBYE, then close).
    let shutdown = services.shutdown.clone();
    match tls {
        None => {
            // Peeking leaves the byte in place for whoever reads next.
            let mut first = [0u8; 1];
            let peeked = tokio::select! {
                () = shutdown.cancelled() => return,
                peeked = timeout(handshake, stream.peek(&mut first)) => peeked,
            };
            if let Ok(Ok(1)) = peeked {
                dispatch(stream, first[0], None, peer, services, accepted_at).await;
            }
        }
        Some(tls) => {
            // Boxed, like the HTTP branch below: a RawSocket session runs in this task for its
            // whole life, and an inline TLS handshake future would make every task larger.
            let opened = Box::pin(async {
                let (mut stream, channel) = tls.accept(stream).await?;
                let mut first = [0u8; 1];
                let n = stream.read(&mut first).await?;
                Ok::<_, std::io::Error>((stream, channel, first[0], n))
            });
            let opened = tokio::select! {
                () = shutdown.cancelled() => return,
                opened = timeout(handshake, opened) => opened,
            };
            match opened {
                Ok(Ok((stream, channel, first, 1))) => {
                    let stream = Prefixed::new(vec![first], stream);
                    // Boxed: the TLS stream inline would make every plain TCP task larger.
                    let tls = Some(channel);
                    Box::pin(dispatch(stream, first, tls, peer, services, accepted_at)).await;
                }
                _ => tracing::debug!(%peer, "TLS handshake failed or timed out"),
            }
        }
    }
}

/// Hands a connection to RawSocket (first byte `0x7F`) or HTTP; `first` is still unread.
async fn dispatch<S>(
    stream: S,
    first: u8,
    tls: Option<ChannelBindings>,
    peer: String,
    services: Services,
    accepted_at: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if first == MAGIC {
        let (reader, writer) = tokio::io::split(stream);
        let kind = TransportKind::RawSocket;
        serve_rawsocket(reader, writer, kind, tls, peer, &services, accepted_at).await;
    } else {
        // Boxed: the task of a RawSocket connection drives its session for the connection's
        // whole life, and hyper's connection future inline would make that task several KiB
        // larger (6.6 KiB a RawSocket session's task was, against 1.7 KiB for WebSocket, whose
        // session runs in a task of its own after the upgrade).
        Box::pin(http::serve(stream, tls, peer, services, accepted_at)).await;
    }
}

async fn serve_rawsocket<R, W>(
    reader: R,
    writer: W,
    kind: TransportKind,
    tls: Option<ChannelBindings>,
    peer: String,
    services: &Services,
    accepted_at: Instant,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let config = &services.config;
    let link =
        match timeout(config.handshake_timeout, rawsocket::accept(reader, writer, config)).await {
            Ok(Ok(Some(link))) => link,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => return tracing::debug!(%peer, %error, "RawSocket handshake failed"),
            Err(_) => return tracing::debug!(%peer, "RawSocket handshake timed out"),
        };
    let transport = TransportInfo {
        kind,
        serializer: link.serializer(),
        peer,
        tls: tls.is_some(),
        channel_bindings: tls.unwrap_or_default(),
        http_path: None,
        subprotocol: None,
    };
    drive(link, transport, services, accepted_at).await;
}

/// Serves RawSocket on a Unix domain socket until shutdown begins.
pub async fn serve_unix(listener: UnixListener, path: PathBuf, services: Services) {
    loop {
        let accepted = tokio::select! {
            () = services.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let connection =
                    serve_unix_connection(stream, path.display().to_string(), services.clone());
                services.shutdown.tracker().spawn(connection);
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed on Unix socket");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn serve_unix_connection(stream: UnixStream, peer: String, services: Services) {
    let (reader, writer) = stream.into_split();
    serve_rawsocket(
        reader,
        writer,
        TransportKind::UnixRawSocket,
        None,
        peer,
        &services,
        Instant::now(),
    )
    .await;
}
