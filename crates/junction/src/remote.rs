//! `junction --url ws://…|wss://… realm|user|group|grant|source …`: the administration commands
//! against a running router. The command joins the admin realm over WebSocket (JSON serializer)
//! with `ticket` authentication, calls the same `bondy.*` procedure the offline command would
//! run, prints the result as JSON and leaves with GOODBYE. Grants are checked as for any session.
//! Over `wss://` the router's certificate is checked against the system's trust store, or only
//! against `--ca-file` when given; `--client-cert`/`--client-key` present a client certificate.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message as Frame};

/// Who connects where.
pub(crate) struct Remote<'a> {
    /// `ws://HOST:PORT/ws` (plain: use it on loopback or a trusted network, since `ticket` sends
    /// the password) or `wss://HOST:PORT/ws`.
    pub url: &'a str,
    /// PEM certificates to trust for `wss://` instead of the system's trust store (a private
    /// CA, or the router's self-signed certificate).
    pub ca_file: Option<&'a Path>,
    /// PEM certificate chain and private key to present to a router that asks for them.
    pub client_identity: Option<(&'a Path, &'a Path)>,
    /// The realm to join: the admin realm to manage every realm.
    pub realm: &'a str,
    pub authid: &'a str,
    pub password: &'a str,
}

/// Calls `procedure` with `args` on the router at `remote.url`; returns `args[0]` of RESULT.
pub(crate) async fn call(
    remote: &Remote<'_>,
    procedure: &str,
    args: Value,
) -> anyhow::Result<Value> {
    let mut request = remote.url.into_client_request().context("not a WebSocket URL")?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("wamp.2.json"));
    let cannot = || format!("cannot connect to {}", remote.url);
    match request.uri().scheme_str() {
        Some("wss") => {
            let host = request.uri().host().context("the URL has no host")?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = request.uri().port_u16().unwrap_or(443);
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(remote)?));
            let name = ServerName::try_from(host.clone())
                .with_context(|| format!("\"{host}\" is not a host name or address"))?;
            let tcp =
                tokio::net::TcpStream::connect((host.as_str(), port)).await.with_context(cannot)?;
            let tls = connector.connect(name, tcp).await.with_context(cannot)?;
            let (socket, _) =
                tokio_tungstenite::client_async(request, tls).await.with_context(cannot)?;
            session(socket, remote, procedure, args).await
        }
        Some("ws") => {
            let (socket, _) =
                tokio_tungstenite::connect_async(request).await.with_context(cannot)?;
            session(socket, remote, procedure, args).await
        }
        _ => bail!("--url must be ws://HOST:PORT/ws or wss://HOST:PORT/ws, not {}", remote.url),
    }
}

/// The TLS settings for `wss://`: the certificates of `ca_file` only, or the system's; the
/// client certificate when there is one.
fn tls_config(remote: &Remote<'_>) -> anyhow::Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    match remote.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("--ca-file {}", path.display()))?;
            if certs.is_empty() {
                bail!("--ca-file {}: no PEM certificate in it", path.display());
            }
            for cert in certs {
                roots.add(cert).with_context(|| format!("--ca-file {}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!("no trusted certificates found on this system; pass --ca-file");
            }
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots);
    let Some((cert_path, key_path)) = remote.client_identity else {
        return Ok(config.with_no_client_auth());
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("--client-cert {}", cert_path.display()))?;
    if chain.is_empty() {
        bail!("--client-cert {}: no PEM certificate in it", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("--client-key {}", key_path.display()))?;
    config.with_client_auth_cert(chain, key).with_context(|| {
        format!("--client-key {} does not fit the certificate", key_path.display())
    })
}

/// Joins the admin realm over `socket`, makes the call and leaves.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: WebSocketStream<S>,
    remote: &Remote<'_>,
    procedure: &str,
    args: Value,
) -> anyhow::Result<Value> {
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

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocketStream<S>,
    message: &Value,
) -> anyhow::Result<()> {
    socket.send(Frame::text(message.to_string())).await.context("the connection failed")
}

async fn recv<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocketStream<S>,
) -> anyhow::Result<Value> {
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
