//! Transport tests over real loopback sockets (`127.0.0.1:0`) and a real Unix socket.
#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use junction_core::{RealmConfig, Router, RouterConfig};
use junction_transport::{
    HttpEndpoints, Services, Shutdown, TransportConfig, serve_tcp, serve_unix,
};

/// A router serving on a free loopback port.
struct Server {
    addr: std::net::SocketAddr,
    shutdown: Shutdown,
}

async fn start(config: TransportConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let services = services(config);
    let shutdown = services.shutdown.clone();
    tokio::spawn(serve_tcp(listener, services));
    Server { addr, shutdown }
}

fn services(config: TransportConfig) -> Services {
    Services {
        router: Router::new(RouterConfig {
            realms: vec![RealmConfig::open("realm1")],
            agent: "test".into(),
            limits: Default::default(),
            admin_realm: None,
        }),
        config: Arc::new(config),
        http: Arc::new(HttpEndpoints {
            metrics: Some(Box::new(|| "junction_test_metric 1\n".into())),
        }),
        shutdown: Shutdown::new(),
    }
}

/// Reads one RawSocket frame: (type, payload).
async fn read_frame(s: &mut (impl AsyncRead + Unpin)) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header).await.ok()?;
    let len =
        (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.ok()?;
    Some((header[0] & 0x07, body))
}

async fn write_frame(s: &mut (impl AsyncWrite + Unpin), kind: u8, body: &[u8]) {
    let len = body.len();
    s.write_all(&[kind, (len >> 16) as u8, (len >> 8) as u8, len as u8]).await.unwrap();
    s.write_all(body).await.unwrap();
}

async fn rawsocket_json(s: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
    s.write_all(&[0x7F, 0xF1, 0, 0]).await.unwrap();
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!((reply[0], reply[1] & 0x0F), (0x7F, 1));
}

async fn send_json(s: &mut (impl AsyncWrite + Unpin), message: Json) {
    write_frame(s, 0, message.to_string().as_bytes()).await;
}

async fn recv_json(s: &mut (impl AsyncRead + Unpin)) -> Json {
    let (kind, body) = tokio::time::timeout(Duration::from_secs(5), read_frame(s))
        .await
        .unwrap()
        .expect("a frame");
    assert_eq!(kind, 0);
    serde_json::from_slice(&body).unwrap()
}

fn hello() -> Json {
    json!([1, "realm1", {"roles": {"caller": {}, "callee": {}}}])
}

#[tokio::test]
async fn rawsocket_handshake_with_unsupported_serializer_gets_error_one() {
    let server = start(TransportConfig::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&[0x7F, 0xF5, 0, 0]).await.unwrap();
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [0x7F, 0x10, 0, 0]);
}

#[tokio::test]
async fn rawsocket_reply_announces_the_router_limit() {
    let server = start(TransportConfig { max_message_size: 1 << 16, ..Default::default() }).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&[0x7F, 0x02, 0, 0]).await.unwrap();
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [0x7F, 0x72, 0, 0]);
}

#[tokio::test]
async fn rawsocket_ping_is_answered_with_pong_echoing_the_payload() {
    let server = start(TransportConfig::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    rawsocket_json(&mut s).await;
    write_frame(&mut s, 1, b"are you there").await;
    assert_eq!(read_frame(&mut s).await, Some((2, b"are you there".to_vec())));
}

#[tokio::test]
async fn rawsocket_session_registers_calls_and_says_goodbye() {
    let server = start(TransportConfig::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    rawsocket_json(&mut s).await;
    send_json(&mut s, hello()).await;
    assert_eq!(recv_json(&mut s).await[0], 2);
    send_json(&mut s, json!([64, 1, {}, "com.echo"])).await;
    let registration = recv_json(&mut s).await[2].clone();
    send_json(&mut s, json!([48, 2, {}, "com.echo", ["hi"]])).await;
    let invocation = recv_json(&mut s).await;
    assert_eq!(
        (&invocation[0], &invocation[1], &invocation[2]),
        (&json!(68), &json!(1), &registration)
    );
    assert_eq!(invocation[4], json!(["hi"]));
    send_json(&mut s, json!([70, 1, {}, ["hi"]])).await;
    assert_eq!(recv_json(&mut s).await, json!([50, 2, {}, ["hi"]]));
    send_json(&mut s, json!([6, {}, "wamp.close.normal"])).await;
    assert_eq!(recv_json(&mut s).await, json!([6, {}, "wamp.close.goodbye_and_out"]));
    assert_eq!(read_frame(&mut s).await, None, "the router closes after GOODBYE");
}

/// Frames that arrive in one read are handled in order, up to a GOODBYE: what follows it is
/// not routed.
#[tokio::test]
async fn messages_that_arrive_together_are_handled_in_order_until_goodbye() {
    let server = start(TransportConfig::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    rawsocket_json(&mut s).await;
    let mut burst = Vec::new();
    for message in [
        hello(),
        json!([64, 1, {}, "com.echo"]),
        json!([48, 2, {}, "com.echo", [1]]),
        json!([48, 3, {}, "com.echo", [2]]),
        json!([6, {}, "wamp.close.normal"]),
        json!([48, 4, {}, "com.echo", [3]]),
    ] {
        write_frame(&mut burst, 0, message.to_string().as_bytes()).await;
    }
    s.write_all(&burst).await.unwrap();
    assert_eq!(recv_json(&mut s).await[0], 2);
    assert_eq!(recv_json(&mut s).await[0], 65);
    for args in [json!([1]), json!([2])] {
        let invocation = recv_json(&mut s).await;
        assert_eq!((&invocation[0], &invocation[4]), (&json!(68), &args));
    }
    assert_eq!(recv_json(&mut s).await, json!([6, {}, "wamp.close.goodbye_and_out"]));
    assert_eq!(read_frame(&mut s).await, None, "the CALL after GOODBYE is not routed");
}

#[tokio::test]
async fn rawsocket_frame_over_the_announced_limit_closes_the_connection() {
    let server = start(TransportConfig { max_message_size: 1024, ..Default::default() }).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    rawsocket_json(&mut s).await;
    s.write_all(&[0, 0, 0x10, 0]).await.unwrap(); // announces 4096 octets
    let abort = recv_json(&mut s).await;
    assert_eq!(abort[2], "wamp.error.protocol_violation");
    assert!(
        abort[1]["message"].as_str().unwrap().contains("4096 octets exceeds the limit of 1024"),
        "{abort}"
    );
    assert_eq!(read_frame(&mut s).await, None);
}

#[tokio::test]
async fn malformed_message_aborts_with_protocol_violation() {
    let server = start(TransportConfig::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    rawsocket_json(&mut s).await;
    write_frame(&mut s, 0, b"[1, \"realm1\", {").await;
    let abort = recv_json(&mut s).await;
    assert_eq!(abort[0], 3);
    assert_eq!(abort[2], "wamp.error.protocol_violation");
    assert_eq!(read_frame(&mut s).await, None);
}

#[tokio::test]
async fn idle_connection_is_closed_after_the_handshake_timeout() {
    let server = start(TransportConfig {
        handshake_timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    rawsocket_json(&mut s).await;
    // No HELLO: the router gives up and closes.
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s)).await.unwrap(),
        None
    );
}

async fn websocket(
    addr: std::net::SocketAddr,
    path: &str,
    protocol: Option<&str>,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_str(protocol).unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, stream).await.map(|(ws, _)| ws)
}

fn http_status(
    result: Result<
        tokio_tungstenite::WebSocketStream<TcpStream>,
        tokio_tungstenite::tungstenite::Error,
    >,
) -> u16 {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the handshake should have been refused"),
    }
}

#[tokio::test]
async fn websocket_without_a_wamp_subprotocol_is_refused() {
    let server = start(TransportConfig::default()).await;
    assert_eq!(http_status(websocket(server.addr, "/ws", Some("chat")).await), 400);
    assert_eq!(http_status(websocket(server.addr, "/ws", None).await), 400);
}

#[tokio::test]
async fn websocket_on_another_path_is_not_found() {
    let server = start(TransportConfig::default()).await;
    assert_eq!(http_status(websocket(server.addr, "/other", Some("wamp.2.json")).await), 404);
}

#[tokio::test]
async fn websocket_picks_the_first_supported_subprotocol_and_serves_json() {
    let server = start(TransportConfig::default()).await;
    let mut ws = websocket(server.addr, "/ws", Some("wamp.2.ubjson, wamp.2.json, wamp.2.cbor"))
        .await
        .unwrap();
    ws.send(WsMessage::text(hello().to_string())).await.unwrap();
    let Some(Ok(WsMessage::Text(welcome))) = ws.next().await else {
        panic!("expected a text frame")
    };
    let welcome: Json = serde_json::from_str(&welcome).unwrap();
    assert_eq!(welcome[0], 2);
    assert_eq!(welcome[2]["realm"], "realm1");
}

#[tokio::test]
async fn websocket_message_over_the_limit_is_aborted_then_closed() {
    let server = start(TransportConfig { max_message_size: 1024, ..Default::default() }).await;
    let mut ws = websocket(server.addr, "/ws", Some("wamp.2.json")).await.unwrap();
    ws.send(WsMessage::text(hello().to_string())).await.unwrap();
    ws.next().await;
    let big = json!([16, 1, {}, "com.topic", ["x".repeat(4096)]]).to_string();
    let _ = ws.send(WsMessage::text(big)).await;
    let Some(Ok(WsMessage::Text(abort))) =
        tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap()
    else {
        panic!("expected ABORT")
    };
    let abort: Json = serde_json::from_str(&abort).unwrap();
    assert_eq!(abort[2], "wamp.error.protocol_violation");
    assert!(abort[1]["message"].as_str().unwrap().contains("too long"), "{abort}");
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    assert!(
        matches!(next, Some(Ok(WsMessage::Close(_))) | None | Some(Err(_))),
        "expected the connection to close, got {next:?}"
    );
}

#[tokio::test]
async fn shutdown_sends_goodbye_system_shutdown_and_waits_for_connections() {
    let server = start(TransportConfig::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    rawsocket_json(&mut s).await;
    send_json(&mut s, hello()).await;
    recv_json(&mut s).await;
    server.shutdown.begin();
    let goodbye = recv_json(&mut s).await;
    assert_eq!(goodbye[0], 6);
    assert_eq!(goodbye[2], "wamp.close.system_shutdown");
    send_json(&mut s, json!([6, {}, "wamp.close.goodbye_and_out"])).await;
    assert!(server.shutdown.wait(Duration::from_secs(5)).await);
    assert_eq!(server.shutdown.connections(), 0);
}

#[tokio::test]
async fn unix_socket_serves_rawsocket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junction.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let services = services(TransportConfig::default());
    let shutdown = services.shutdown.clone();
    tokio::spawn(serve_unix(listener, path.clone(), services));
    let mut s = UnixStream::connect(&path).await.unwrap();
    rawsocket_json(&mut s).await;
    send_json(&mut s, hello()).await;
    let welcome = recv_json(&mut s).await;
    assert_eq!(welcome[0], 2);
    shutdown.begin();
}

#[tokio::test]
async fn batched_websocket_splits_and_builds_batches() {
    let server = start(TransportConfig::default()).await;
    let mut ws = websocket(server.addr, "/ws", Some("wamp.2.json.batched")).await.unwrap();
    // HELLO and a REGISTER in one WebSocket message, each followed by 0x1e.
    let batch = format!("{}\u{1e}{}\u{1e}", hello(), json!([64, 1, {}, "com.batched"]));
    ws.send(WsMessage::text(batch)).await.unwrap();
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let Some(Ok(WsMessage::Text(text))) = ws.next().await else {
            panic!("expected a text frame")
        };
        assert!(text.ends_with('\u{1e}'), "every message is terminated: {text:?}");
        for part in text.split('\u{1e}').filter(|p| !p.is_empty()) {
            replies.push(serde_json::from_str::<Json>(part).unwrap());
        }
    }
    assert_eq!(replies[0][0], 2);
    assert_eq!(replies[1][0], 65);
}

#[tokio::test]
async fn batched_msgpack_uses_length_prefixes_and_an_empty_batch_fails_the_transport() {
    let server = start(TransportConfig::default()).await;
    let mut ws = websocket(server.addr, "/ws", Some("wamp.2.msgpack.batched")).await.unwrap();
    // [1, "realm1", {"roles": {"caller": {}}}] in MessagePack.
    let hello: &[u8] = b"\x93\x01\xa6realm1\x81\xa5roles\x81\xa6caller\x80";
    let mut batch = (hello.len() as u32).to_be_bytes().to_vec();
    batch.extend_from_slice(hello);
    ws.send(WsMessage::binary(batch)).await.unwrap();
    let Some(Ok(WsMessage::Binary(reply))) = ws.next().await else {
        panic!("expected a binary frame")
    };
    let len = u32::from_be_bytes(reply[..4].try_into().unwrap()) as usize;
    assert_eq!(len, reply.len() - 4);
    assert_eq!(reply[5], 0x02, "WELCOME");
    ws.send(WsMessage::binary(Vec::<u8>::new())).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    assert!(matches!(next, Some(Ok(WsMessage::Close(_))) | None | Some(Err(_))), "{next:?}");
}

/// Sends one HTTP/1.1 request and returns the status line and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served_on_the_wamp_port() {
    let server = start(TransportConfig::default()).await;
    assert_eq!(http_get(server.addr, "/healthz").await, ("HTTP/1.1 200 OK".into(), "ok\n".into()));
    assert_eq!(http_get(server.addr, "/readyz").await.0, "HTTP/1.1 200 OK");
    let (status, body) = http_get(server.addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("junction_test_metric 1"));
    assert_eq!(http_get(server.addr, "/nope").await.0, "HTTP/1.1 404 Not Found");
    assert_eq!(http_get(server.addr, "/ws").await.0, "HTTP/1.1 426 Upgrade Required");
}

#[tokio::test]
async fn shutdown_closes_idle_http_connections_and_stops_answering_readiness() {
    let server = start(TransportConfig::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("ready\n") {
        let mut chunk = [0u8; 512];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed early");
        seen.extend_from_slice(&chunk[..n]);
    }
    server.shutdown.begin();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle keep-alive connection is closed on shutdown");
    assert!(server.shutdown.wait(Duration::from_secs(5)).await);
    let ready = match TcpStream::connect(server.addr).await {
        Err(_) => false,
        Ok(mut s) => {
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").await;
            let mut response = String::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut response)).await;
            response.starts_with("HTTP/1.1 200")
        }
    };
    assert!(!ready, "no readiness after shutdown began");
}

#[tokio::test]
async fn slow_http_headers_are_cut_off_by_the_handshake_timeout() {
    let server = start(TransportConfig {
        handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the router should close a connection whose headers never complete");
}

#[tokio::test]
async fn connections_beyond_the_per_ip_limit_are_refused_in_their_protocol() {
    let server =
        start(TransportConfig { max_connections_per_ip: Some(1), ..Default::default() }).await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    rawsocket_json(&mut first).await;
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second.write_all(&[0x7F, 0xF1, 0, 0]).await.unwrap();
    let mut reply = [0u8; 4];
    second.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [0x7F, 0x40, 0, 0], "RawSocket error 4: connection limit");
    assert_eq!(http_get(server.addr, "/healthz").await.0, "HTTP/1.1 503 Service Unavailable");
    drop(first);
    // Once the first connection is gone its slot is free again.
    let mut third = None;
    for _ in 0..50 {
        let (status, _) = http_get(server.addr, "/healthz").await;
        if status == "HTTP/1.1 200 OK" {
            third = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(third.is_some(), "the slot was released");
}

#[tokio::test]
async fn a_client_that_does_not_answer_pings_is_disconnected() {
    let config = TransportConfig {
        ping_interval: Some(Duration::from_millis(100)),
        ping_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let server = start(config).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    rawsocket_json(&mut s).await;
    send_json(&mut s, hello()).await;
    recv_json(&mut s).await;
    // The router pings; this client reads the PING but never answers it.
    let (kind, payload) = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s))
        .await
        .unwrap()
        .expect("PING");
    assert_eq!(kind, 1);
    assert!(!payload.is_empty());
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s)).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let config = TransportConfig {
        ping_interval: Some(Duration::from_millis(50)),
        ping_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let server = start(config).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    rawsocket_json(&mut s).await;
    send_json(&mut s, hello()).await;
    recv_json(&mut s).await;
    for _ in 0..3 {
        let (kind, payload) = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s))
            .await
            .unwrap()
            .expect("PING");
        assert_eq!(kind, 1);
        write_frame(&mut s, 2, &payload).await;
    }
    send_json(&mut s, json!([6, {}, "wamp.close.normal"])).await;
    assert_eq!(recv_json(&mut s).await[2], "wamp.close.goodbye_and_out");
}

/// Joins over RawSocket/JSON and returns the stream and session id.
async fn join_rawsocket(addr: std::net::SocketAddr) -> (TcpStream, u64) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    rawsocket_json(&mut s).await;
    send_json(&mut s, hello()).await;
    let welcome = recv_json(&mut s).await;
    (s, welcome[1].as_u64().unwrap())
}

async fn subscribe_raw(s: &mut TcpStream, topic: &str) {
    send_json(s, json!([32, 1, {}, topic])).await;
    assert_eq!(recv_json(s).await[0], 33);
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_loses_events_while_others_get_them_all() {
    const EVENTS: u64 = 20_000;
    let config = TransportConfig { outbound_queue: 64, ..Default::default() };
    let server = start(config).await;
    let (mut slow, slow_id) = join_rawsocket(server.addr).await;
    let (mut fast, _) = join_rawsocket(server.addr).await;
    let (mut publisher, _) = join_rawsocket(server.addr).await;
    subscribe_raw(&mut slow, "com.flood").await;
    subscribe_raw(&mut fast, "com.flood").await;
    // The slow subscriber never reads again. The fast one reads concurrently and reports its
    // progress; the publisher stays at most one window ahead of it, so only a subscriber that
    // does not read at all can fall behind by a whole queue.
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        let mut received = 0u64;
        while received < EVENTS {
            let event = recv_json(&mut fast).await;
            assert_eq!(event[0], 36);
            received += 1;
            let _ = progress_tx.send(received);
        }
        received
    });
    const WINDOW: u64 = 32;
    let payload = "x".repeat(1024);
    for n in 0..EVENTS {
        if n >= WINDOW {
            progress.wait_for(|got| *got >= n - WINDOW).await.unwrap();
        }
        send_json(&mut publisher, json!([16, n + 1, {}, "com.flood", [payload]])).await;
    }
    // An acknowledged publication proves the publisher was never held back.
    send_json(&mut publisher, json!([16, EVENTS + 1, {"acknowledge": true}, "com.done"])).await;
    assert_eq!(recv_json(&mut publisher).await[0], 17);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(30), reader).await.unwrap().unwrap(),
        EVENTS
    );
    // The router counted what it dropped for the slow one, and says so through the meta API.
    send_json(&mut publisher, json!([48, 1, {}, "wamp.session.get", [slow_id]])).await;
    let details = recv_json(&mut publisher).await;
    assert_eq!(details[0], 50);
    assert!(details[3][0]["dropped_events"].as_u64().unwrap() > 0, "{details}");
    drop(slow);
}

#[tokio::test]
async fn the_disconnect_policy_closes_a_subscriber_that_stops_reading() {
    let config = TransportConfig {
        outbound_queue: 16,
        disconnect_slow_consumers: true,
        ..Default::default()
    };
    let server = start(config).await;
    let (mut slow, slow_id) = join_rawsocket(server.addr).await;
    let (mut watcher, _) = join_rawsocket(server.addr).await;
    let (mut publisher, _) = join_rawsocket(server.addr).await;
    subscribe_raw(&mut slow, "com.flood").await;
    subscribe_raw(&mut watcher, "wamp.session.on_leave").await;
    let payload = "x".repeat(4096);
    let mut left = None;
    // Publish until the router gives up on the slow subscriber (bounded).
    for n in 0..20_000u64 {
        send_json(&mut publisher, json!([16, n + 1, {}, "com.flood", [payload]])).await;
        if n % 256 == 255 {
            send_json(&mut publisher, json!([48, n + 1, {}, "wamp.session.count", []])).await;
            let count = recv_json(&mut publisher).await;
            if count[3][0] == 2 {
                left = Some(recv_json(&mut watcher).await);
                break;
            }
        }
    }
    let left = left.expect("the slow subscriber was disconnected");
    assert_eq!(left[4][0], slow_id);
    drop(slow);
}

/// A self-signed certificate for 127.0.0.1 written to `dir`, and a client config trusting it.
fn self_signed(
    dir: &std::path::Path,
) -> (junction_transport::TlsFiles, Arc<tokio_rustls::rustls::ClientConfig>) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        junction_transport::TlsFiles { cert: cert_path, key: key_path, client_ca: None },
        Arc::new(client),
    )
}

#[tokio::test]
async fn rawsocket_and_websocket_work_over_tls_and_the_session_knows_it() {
    let dir = tempfile::tempdir().unwrap();
    let (files, client) = self_signed(dir.path());
    let tls = Arc::new(junction_transport::Tls::load(files).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(junction_transport::serve_tls(
        listener,
        services(TransportConfig::default()),
        Arc::clone(&tls),
    ));
    let connector = tokio_rustls::TlsConnector::from(client);
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();

    // RawSocket over TLS.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = connector.connect(name.clone(), tcp).await.unwrap();
    rawsocket_json(&mut s).await;
    send_json(&mut s, hello()).await;
    let welcome = recv_json(&mut s).await;
    assert_eq!(welcome[0], 2);
    send_json(&mut s, json!([48, 1, {}, "wamp.session.get", [welcome[1]]])).await;
    assert_eq!(recv_json(&mut s).await[3][0]["transport"]["tls"], true);

    // WebSocket over TLS (wss).
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls_stream = connector.connect(name, tcp).await.unwrap();
    let mut request = format!("wss://{addr}/ws").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("wamp.2.json"));
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls_stream).await.unwrap();
    ws.send(WsMessage::text(hello().to_string())).await.unwrap();
    let Some(Ok(WsMessage::Text(text))) = ws.next().await else { panic!("expected WELCOME") };
    assert_eq!(serde_json::from_str::<Json>(&text).unwrap()[0], 2);

    // Reloading keeps serving.
    tls.reload().unwrap();
    assert_eq!(http_get_tls(addr, &connector).await, "HTTP/1.1 200 OK");
}

async fn http_get_tls(
    addr: std::net::SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> String {
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = connector.connect(name, TcpStream::connect(addr).await.unwrap()).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response).await;
    response.lines().next().unwrap_or_default().to_owned()
}
