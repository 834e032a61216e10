//! The WebSocket link driven by arbitrary octets from a client, shared by the
//! `websocket_framing` fuzz target and the test that replays its corpus. Not part of the stable
//! API.

use std::sync::OnceLock;

use tokio::io::AsyncWriteExt;

use crate::config::TransportConfig;
use crate::connection::Link;
use crate::websocket::{Subprotocol, WebSocketLink};

/// The first octet picks the subprotocol (plain or batched, JSON or MessagePack); the rest is
/// what the client sent on an established connection, then it closed its side. The link reads
/// until the stream ends or the framing fails, then closes: whatever the octets, it must not
/// panic, and no message may exceed the size limit.
pub fn websocket_frames(data: &[u8]) {
    const LIMIT: usize = 64 * 1024;
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let Some((&selector, sent)) = data.split_first() else { return };
    let name = ["wamp.2.json", "wamp.2.json.batched", "wamp.2.msgpack", "wamp.2.msgpack.batched"]
        [usize::from(selector) % 4];
    let Some(protocol) = Subprotocol::parse(name) else { return };
    let runtime =
        RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().ok());
    let Some(runtime) = runtime else { return };
    runtime.block_on(async {
        let (ours, mut theirs) = tokio::io::duplex(sent.len().max(1));
        if theirs.write_all(sent).await.is_err() {
            return;
        }
        drop(theirs);
        let config = TransportConfig { max_message_size: LIMIT, ..TransportConfig::default() };
        let mut link = WebSocketLink::new(ours, protocol, &config);
        while let Ok(Some(incoming)) = link.recv().await {
            if let crate::connection::Incoming::Message(message) = incoming {
                assert!(message.len() <= LIMIT, "a message over the limit got through");
            }
        }
        link.close().await;
    });
}
