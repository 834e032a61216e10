//! `junction --url ws://… realm|user|group|grant …`: the administration commands against a
//! running router. The command joins the admin realm over WebSocket (JSON serializer) with
//! `ticket` authentication, calls the same `bondy.*` procedure the offline command would run,
//! prints the result as JSON and leaves with GOODBYE. Grants are checked as for any session.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message as Frame};

/// Who connects where.
pub(crate) struct Remote<'a> {
    /// `ws://HOST:PORT/ws` (plain WebSocket: use it on loopback or a trusted network).
    pub url: &'a str,
    /// The realm to join: the admin realm to manage every realm.
    pub realm: &'a str,
    pub authid: &'a str,
    pub password: &'a str,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Calls `procedure` with `args` on the router at `remote.url`; returns `args[0]` of RESULT.
pub(crate) async fn call(
    remote: &Remote<'_>,
    procedure: &str,
    args: Value,
) -> anyhow::Result<Value> {
    let mut request = remote.url.into_client_request().context("not a WebSocket URL")?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("wamp.2.json"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("cannot connect to {}", remote.url))?;
    let hello = json!([1, remote.realm, {
        "roles": {"caller": {}}, "authid": remote.authid, "authmethods": ["ticket"],
    }]);
    send(&mut socket, &hello).await?;
    let reply = recv(&mut socket).await?;
    if reply[0] == 4 {
        send(&mut socket, &json!([5, remote.password, {}])).await?;
    }
    let welcome = if reply[0] == 4 { recv(&mut socket).await? } else { reply };
    match welcome[0].as_u64() {
        Some(2) => {}
        Some(3) => bail!("{}: {}", welcome[2].as_str().unwrap_or("ABORT"), message(&welcome[1])),
        _ => bail!("unexpected reply to HELLO: {welcome}"),
    }
    send(&mut socket, &json!([48, 1, {}, procedure, args])).await?;
    let result = loop {
        let reply = recv(&mut socket).await?;
        match reply[0].as_u64() {
            Some(50) => break reply.get(3).and_then(|a| a.get(0)).cloned().unwrap_or(Value::Null),
            Some(8) => bail!("{}: {}", reply[4].as_str().unwrap_or("ERROR"), text(&reply[5][0])),
            // EVENT and anything else a router may send meanwhile.
            _ => continue,
        }
    };
    send(&mut socket, &json!([6, {}, "wamp.close.close_realm"])).await?;
    // The router answers GOODBYE and closes; either way the call is done.
    let _ = recv(&mut socket).await;
    Ok(result)
}

/// ABORT's readable message.
fn message(details: &Value) -> String {
    text(&details["message"])
}

/// A string value as it is, anything else as JSON.
fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

async fn send(socket: &mut Socket, message: &Value) -> anyhow::Result<()> {
    socket.send(Frame::text(message.to_string())).await.context("the connection failed")
}

async fn recv(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match socket.next().await {
            Some(Ok(Frame::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(Frame::Close(_))) | None => bail!("the router closed the connection"),
            Some(Ok(_)) => continue,
            Some(Err(tungstenite::Error::ConnectionClosed)) => {
                bail!("the router closed the connection")
            }
            Some(Err(e)) => return Err(e).context("the connection failed"),
        }
    }
}
