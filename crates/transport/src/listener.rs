//! Accept loops. The universal TCP listener serves RawSocket and WebSocket on one port: a
//! RawSocket handshake starts with `0x7F`, which no HTTP request can.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use junction_core::{Router, TransportInfo, TransportKind};
use junction_wire::rawsocket::MAGIC;

use crate::config::TransportConfig;
use crate::connection::drive;
use crate::{rawsocket, websocket};

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

    /// Resolves once shutdown has begun.
    pub(crate) async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// The number of open connections.
    pub fn connections(&self) -> usize {
        self.tracker.len()
    }
}

/// Serves WebSocket and RawSocket on `listener` until shutdown begins.
pub async fn serve_tcp(
    listener: TcpListener,
    router: Arc<Router>,
    config: Arc<TransportConfig>,
    shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Small WAMP messages must not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
                let (router, config, token) =
                    (Arc::clone(&router), Arc::clone(&config), shutdown.token.clone());
                shutdown.tracker.spawn(serve_tcp_connection(
                    stream,
                    peer.to_string(),
                    router,
                    config,
                    token,
                ));
            }
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_tcp_connection(
    stream: TcpStream,
    peer: String,
    router: Arc<Router>,
    config: Arc<TransportConfig>,
    token: CancellationToken,
) {
    let accepted_at = Instant::now();
    let mut first = [0u8; 1];
    let sniffed = tokio::select! {
        () = token.cancelled() => return,
        sniffed = timeout(config.handshake_timeout, stream.peek(&mut first)) => sniffed,
    };
    if !matches!(sniffed, Ok(Ok(1))) {
        return;
    }
    if first[0] == MAGIC {
        let (reader, writer) = stream.into_split();
        serve_rawsocket(
            reader,
            writer,
            TransportKind::RawSocket,
            peer,
            router,
            &config,
            token,
            accepted_at,
        )
        .await;
    } else {
        let handshake = timeout(config.handshake_timeout, websocket::accept(stream, &config)).await;
        let accepted = match handshake {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(error)) => return tracing::debug!(%peer, %error, "WebSocket handshake failed"),
            Err(_) => return tracing::debug!(%peer, "WebSocket handshake timed out"),
        };
        let transport = TransportInfo {
            kind: TransportKind::WebSocket,
            serializer: accepted.link.serializer(),
            peer,
            tls: false,
            http_path: Some(accepted.path),
            subprotocol: Some(accepted.subprotocol.to_owned()),
        };
        drive(accepted.link, router, transport, &config, token, accepted_at).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_rawsocket<R, W>(
    reader: R,
    writer: W,
    kind: TransportKind,
    peer: String,
    router: Arc<Router>,
    config: &TransportConfig,
    token: CancellationToken,
    accepted_at: Instant,
) where
    R: tokio::io::AsyncRead + Unpin + Send,
    W: tokio::io::AsyncWrite + Unpin + Send,
{
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
        tls: false,
        http_path: None,
        subprotocol: None,
    };
    drive(link, router, transport, config, token, accepted_at).await;
}

/// Serves RawSocket on a Unix domain socket until shutdown begins.
pub async fn serve_unix(
    listener: UnixListener,
    path: PathBuf,
    router: Arc<Router>,
    config: Arc<TransportConfig>,
    shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.token.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let (router, config, token) =
                    (Arc::clone(&router), Arc::clone(&config), shutdown.token.clone());
                let peer = path.display().to_string();
                shutdown.tracker.spawn(serve_unix_connection(stream, peer, router, config, token));
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed on Unix socket");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn serve_unix_connection(
    stream: UnixStream,
    peer: String,
    router: Arc<Router>,
    config: Arc<TransportConfig>,
    token: CancellationToken,
) {
    let (reader, writer) = stream.into_split();
    serve_rawsocket(
        reader,
        writer,
        TransportKind::UnixRawSocket,
        peer,
        router,
        &config,
        token,
        Instant::now(),
    )
    .await;
}
