//! HTTP on the universal port: the WebSocket upgrade at the configured path, and the operator
//! endpoints `/healthz`, `/readyz` and `/metrics`. Served with hyper; the WebSocket opening
//! handshake is answered here and the upgraded connection is handed to the WAMP driver.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, CONTENT_TYPE, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use junction_core::session::ChannelBindings;
use junction_core::{TransportInfo, TransportKind};

use crate::connection::drive;
use crate::listener::Services;
use crate::websocket::{Subprotocol, WebSocketLink};

/// What the operator endpoints show, provided by the binary.
#[derive(Default)]
pub struct HttpEndpoints {
    /// Renders `/metrics` (Prometheus text format); `None` answers 404.
    pub metrics: Option<Box<dyn Fn() -> String + Send + Sync>>,
}

/// Serves one HTTP/1.1 connection (keep-alive included) until it closes or upgrades.
pub(crate) async fn serve<S>(
    stream: S,
    tls: Option<ChannelBindings>,
    peer: String,
    services: Services,
    accepted_at: Instant,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let config = Arc::clone(&services.config);
    let services_shutdown = services.shutdown.clone();
    let origin = Origin { services, tls, peer, accepted_at };
    let service = service_fn(move |request| {
        let origin = origin.clone();
        async move { Ok::<_, Infallible>(route(request, origin)) }
    });
    let shutdown = services_shutdown.clone();
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // A client that trickles its request headers (slowloris) is cut off.
        .header_read_timeout(config.handshake_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            // Finish the request in progress, then close; upgraded sessions close on their own.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}

/// The connection a request arrived on.
#[derive(Clone)]
struct Origin {
    services: Services,
    /// The connection's TLS, if any.
    tls: Option<ChannelBindings>,
    peer: String,
    accepted_at: Instant,
}

fn route(request: Request<Incoming>, origin: Origin) -> Response<Full<Bytes>> {
    let services = &origin.services;
    let path = request.uri().path().to_owned();
    if path == services.config.websocket_path {
        return upgrade(request, origin);
    }
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here\n");
    }
    match path.as_str() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if services.shutdown.is_shutting_down() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
        }
        "/readyz" => text(StatusCode::OK, "ready\n"),
        "/metrics" => match &services.http.metrics {
            Some(render) => {
                let mut response = Response::new(Full::new(Bytes::from(render())));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
                response
            }
            None => text(StatusCode::NOT_FOUND, "metrics are disabled\n"),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            &format!("nothing at {path}; WAMP is at {}\n", services.config.websocket_path),
        ),
    }
}

/// Answers a WebSocket opening handshake (RFC 6455 §4.2.2) and hands the upgraded connection to
/// the WAMP driver. The client must offer a WAMP subprotocol we speak; the first one wins.
fn upgrade(request: Request<Incoming>, origin: Origin) -> Response<Full<Bytes>> {
    let Origin { services, tls, peer, accepted_at } = origin;
    let headers = request.headers();
    let has_token = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let key = headers.get("sec-websocket-key").cloned();
    let version_ok = headers.get("sec-websocket-version").is_some_and(|v| v == "13");
    let (Some(key), true, true, true) = (
        key,
        has_token(CONNECTION, "upgrade"),
        has_token(UPGRADE, "websocket"),
        version_ok && request.method() == Method::GET,
    ) else {
        return text(
            StatusCode::UPGRADE_REQUIRED,
            "this is a WAMP WebSocket endpoint: send a WebSocket (version 13) upgrade\n",
        );
    };
    let offered = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let Some(protocol) = offered.filter_map(Subprotocol::parse).next() else {
        let message = "no supported WAMP subprotocol offered; use wamp.2.json, wamp.2.msgpack or wamp.2.cbor \
                       (optionally .batched)\n";
        return text(StatusCode::BAD_REQUEST, message);
    };
    let path = request.uri().path().to_owned();
    let tracker = services.shutdown.tracker().clone();
    // Taken out of the request here, so that the connection's task does not keep the request.
    let on_upgrade = hyper::upgrade::on(request);
    tracker.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => return tracing::debug!(%error, "WebSocket upgrade failed"),
        };
        let link = WebSocketLink::new(TokioIo::new(upgraded), protocol, &services.config);
        let transport = TransportInfo {
            kind: TransportKind::WebSocket,
            serializer: protocol.serializer(),
            peer,
            tls: tls.is_some(),
            channel_bindings: tls.unwrap_or_default(),
            http_path: Some(path),
            subprotocol: Some(protocol.name().to_owned()),
        };
        drive(link, transport, &services, accepted_at).await;
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol.name()));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
