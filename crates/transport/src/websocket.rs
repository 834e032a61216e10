//! WebSocket (RFC 6455) with the WAMP subprotocols `wamp.2.json`, `wamp.2.msgpack` and
//! `wamp.2.cbor`, on top of `tokio-tungstenite`.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use junction_wire::Serializer;

use crate::config::TransportConfig;
use crate::connection::{Incoming, Link, LinkError};

/// What the WebSocket opening handshake agreed.
pub(crate) struct Accepted<S> {
    pub(crate) link: WebSocketLink<S>,
    pub(crate) path: String,
    pub(crate) subprotocol: &'static str,
}

/// Performs the opening handshake: the path must be the configured one and the client must
/// offer a WAMP subprotocol we speak (the first one it lists wins).
#[allow(clippy::result_large_err)] // The callback's error type is tungstenite's HTTP response.
pub(crate) async fn accept<S>(stream: S, config: &TransportConfig) -> Result<Accepted<S>, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut agreed: Option<(Serializer, String)> = None;
    let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let path = request.uri().path().to_owned();
        if path != config.websocket_path {
            return Err(refusal(
                StatusCode::NOT_FOUND,
                format!("no WAMP endpoint at {path}; use {}", config.websocket_path),
            ));
        }
        let offered = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim);
        let Some(serializer) = offered.filter_map(Serializer::from_subprotocol).next() else {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "no supported WAMP subprotocol offered; use wamp.2.json, wamp.2.msgpack or wamp.2.cbor".into(),
            ));
        };
        response
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(serializer.subprotocol()));
        agreed = Some((serializer, path));
        Ok(response)
    };
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config(config)))
            .await?;
    let Some((serializer, path)) = agreed else {
        // The handshake only succeeds through the callback's Ok branch, which sets `agreed`.
        return Err(LinkError::Io(std::io::Error::other(
            "handshake completed without a subprotocol",
        )));
    };
    let max = config.max_message_size;
    Ok(Accepted {
        link: WebSocketLink { ws, serializer, max },
        path,
        subprotocol: serializer.subprotocol(),
    })
}

#[allow(clippy::result_large_err)]
fn refusal(status: StatusCode, message: String) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(message));
    *response.status_mut() = status;
    response
}

/// Buffers are sized on purpose: the library defaults (128 KiB each) would dominate the memory of
/// an idle session.
fn ws_config(config: &TransportConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(config.max_message_size.saturating_mul(2))
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size))
}

/// An established WebSocket connection carrying one WAMP session.
pub(crate) struct WebSocketLink<S> {
    ws: WebSocketStream<S>,
    serializer: Serializer,
    max: usize,
}

impl<S> WebSocketLink<S> {
    pub(crate) fn serializer(&self) -> Serializer {
        self.serializer
    }
}

impl<S> Link for WebSocketLink<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn recv(&mut self) -> Result<Option<Incoming>, LinkError> {
        loop {
            match self.ws.next().await {
                Some(Ok(WsMessage::Binary(bytes))) => return Ok(Some(Incoming::Message(bytes))),
                Some(Ok(WsMessage::Text(text))) => {
                    return Ok(Some(Incoming::Message(Bytes::from(text))));
                }
                // Pings are answered by the library on the next write or flush.
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                Some(Ok(WsMessage::Close(_))) | None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    async fn send(&mut self, message: Bytes) -> Result<(), LinkError> {
        let frame = if self.serializer.is_text() {
            match Utf8Bytes::try_from(message) {
                Ok(text) => WsMessage::Text(text),
                Err(_) => {
                    return Err(LinkError::Io(std::io::Error::other("JSON output was not UTF-8")));
                }
            }
        } else {
            WsMessage::Binary(message)
        };
        Ok(self.ws.feed(frame).await?)
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        Ok(self.ws.flush().await?)
    }

    async fn pong(&mut self, _payload: Bytes) -> Result<(), LinkError> {
        Ok(())
    }

    async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }

    fn peer_max_message(&self) -> usize {
        // WebSocket has no negotiated limit; never send more than we would accept ourselves.
        self.max
    }
}
