//! TLS for the universal listener (WSS and RawSocket over TLS), with rustls. Certificates are
//! re-read on demand ([`Tls::reload`], wired to SIGHUP by the binary) without dropping
//! connections: new handshakes use the new certificate.
//!
//! Each connection learns its channel bindings, which cryptosign can bind a signature to:
//! `tls-exporter` on TLS 1.3, `tls-unique` on TLS 1.2 ([`crate::tls_unique`]).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use junction_core::session::ChannelBindings;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    KeyLog, ProtocolVersion, RootCertStore, ServerConfig, ServerConnection,
};
use tokio_rustls::server::TlsStream;

use crate::tls_unique::{MasterSecrets, Recorder};

/// Where the certificate and key live.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate signed by one of them.
    pub client_ca: Option<PathBuf>,
}

/// A TLS server configuration that can be reloaded.
pub struct Tls {
    files: TlsFiles,
    config: RwLock<Arc<ServerConfig>>,
    /// Where rustls leaves TLS 1.2 master secrets for `tls-unique`.
    secrets: Arc<MasterSecrets>,
}

impl Tls {
    /// Loads the certificate and key; errors name the file that is wrong.
    pub fn load(files: TlsFiles) -> Result<Self, String> {
        let secrets = Arc::default();
        let config = RwLock::new(Arc::new(server_config(&files, &secrets)?));
        Ok(Self { files, config, secrets })
    }

    /// Re-reads the files; on error the previous certificate stays in use.
    pub fn reload(&self) -> Result<(), String> {
        let config = server_config(&self.files, &self.secrets)?;
        *self.config.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
        Ok(())
    }

    /// Completes the TLS handshake of a new connection, and reads its channel bindings.
    pub(crate) async fn accept<S>(
        &self,
        stream: S,
    ) -> std::io::Result<(TlsStream<Recorder<S>>, ChannelBindings)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = TlsAcceptor::from(Arc::clone(
            &self.config.read().unwrap_or_else(std::sync::PoisonError::into_inner),
        ));
        let mut stream = acceptor.accept(Recorder::new(stream)).await?;
        let (recorder, connection) = stream.get_mut();
        let tls_unique = recorder.stop(connection, &self.secrets);
        let bindings = ChannelBindings { tls_exporter: tls_exporter(connection), tls_unique };
        Ok((stream, bindings))
    }
}

/// The `tls-exporter` channel binding (RFC 9266), which is defined for TLS 1.3 (TLS 1.2 would
/// need the extended master secret; it has `tls-unique`).
fn tls_exporter(connection: &ServerConnection) -> Option<[u8; 32]> {
    if connection.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
        return None;
    }
    connection.export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", Some(&[])).ok()
}

fn server_config(files: &TlsFiles, secrets: &Arc<MasterSecrets>) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("{}: {e}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
            {
                roots
                    .add(cert.map_err(|e| format!("{}: {e}", path.display()))?)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    config.key_log = Arc::clone(secrets) as Arc<dyn KeyLog>;
    Ok(config)
}

/// A stream whose first bytes were already read (to tell RawSocket from HTTP) and are served
/// again before the rest.
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self { prefix, offset: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.offset < self.prefix.len() {
            let rest = &self.prefix[self.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.offset += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
