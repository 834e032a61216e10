//! The `tls-unique` channel binding (RFC 5929) of TLS 1.2 connections: the first Finished
//! message of the handshake.
//!
//! rustls does not hand out Finished messages, so the server works its verify_data out the way
//! the peer did: the TLS 1.2 PRF of the master secret over the hash of the handshake messages
//! before it (RFC 5246, 7.4.9). The master secret comes from rustls's key log, the handshake
//! messages from the octets the connection carried until the handshake completed (they are in
//! the clear in TLS 1.2 until ChangeCipherSpec). TLS 1.3 defines no `tls-unique`; its
//! connections get `tls-exporter` instead (see [`crate::tls`]).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::{
    HandshakeKind, KeyLog, ProtocolVersion, ServerConnection, SupportedCipherSuite,
};
use zeroize::Zeroizing;

/// Octets a handshake may take in one direction before recording gives up (a certificate
/// chain of a few KiB is usual).
const MAX_RECORDED: usize = 64 * 1024;

/// Master secrets waiting for their connection; a handshake that fails after the key exchange
/// leaves its entry behind, so only the latest are kept.
const MAX_WAITING_SECRETS: usize = 1024;

/// The TLS 1.2 master secrets rustls derives, by client random, until the connection that
/// derived each takes it (rustls's [`KeyLog`], label `CLIENT_RANDOM`). Each is wiped from
/// memory when it is dropped: used, evicted, or with the listener.
#[derive(Debug, Default)]
pub(crate) struct MasterSecrets {
    waiting: Mutex<VecDeque<([u8; 32], MasterSecret)>>,
}

type MasterSecret = Zeroizing<Vec<u8>>;

impl MasterSecrets {
    fn take(&self, client_random: &[u8]) -> Option<MasterSecret> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let at = waiting.iter().position(|(random, _)| random == client_random)?;
        waiting.remove(at).map(|(_, secret)| secret)
    }
}

impl KeyLog for MasterSecrets {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if label != "CLIENT_RANDOM" {
            return;
        }
        let Ok(random) = <[u8; 32]>::try_from(client_random) else { return };
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.len() >= MAX_WAITING_SECRETS {
            waiting.pop_front();
        }
        waiting.push_back((random, Zeroizing::new(secret.to_vec())));
    }

    fn will_log(&self, label: &str) -> bool {
        // TLS 1.3's secrets are not needed: rustls does not even derive them for us.
        label == "CLIENT_RANDOM"
    }
}

/// A connection that keeps a copy of what it carries until [`Recorder::stop`]: the handshake.
pub(crate) struct Recorder<S> {
    inner: S,
    recording: Option<Box<Recording>>,
}

#[derive(Default)]
struct Recording {
    /// From the client.
    read: Vec<u8>,
    /// To the client.
    written: Vec<u8>,
}

impl<S> Recorder<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner, recording: Some(Box::default()) }
    }

    /// Ends the recording and works out the connection's `tls-unique` from it: `None` unless
    /// the connection is TLS 1.2 and its handshake could be followed.
    pub(crate) fn stop(
        &mut self,
        connection: &ServerConnection,
        secrets: &MasterSecrets,
    ) -> Option<[u8; 12]> {
        let recording = self.recording.take()?;
        if connection.protocol_version() != Some(ProtocolVersion::TLSv1_2) {
            return None;
        }
        let Some(SupportedCipherSuite::Tls12(suite)) = connection.negotiated_cipher_suite() else {
            return None;
        };
        let client = handshake_messages(&recording.read)?;
        let server = handshake_messages(&recording.written)?;
        let (hello, rest) = client.split_first()?;
        // ClientHello: type, length (4), version (2), then the client random.
        let master_secret = secrets.take(hello.get(6..38)?)?;
        let mut transcript = hello.to_vec();
        let label: &[u8] = match connection.handshake_kind()? {
            // The client's Finished comes first: it covers the server's first flight (up to
            // ServerHelloDone) and the client's second one.
            HandshakeKind::Full => {
                let done = server.iter().position(|m| m.first() == Some(&SERVER_HELLO_DONE))?;
                server[..=done].iter().chain(rest).for_each(|m| transcript.extend_from_slice(m));
                b"client finished"
            }
            // On resumption the server's Finished comes first, right after its ServerHello.
            HandshakeKind::Resumed => {
                server.iter().for_each(|m| transcript.extend_from_slice(m));
                b"server finished"
            }
            HandshakeKind::FullWithHelloRetryRequest => return None,
        };
        let hash = suite.common.hash_provider.hash(&transcript);
        let mut verify_data = [0u8; 12];
        suite.prf_provider.for_secret(&mut verify_data, &master_secret, label, hash.as_ref());
        Some(verify_data)
    }
}

const CHANGE_CIPHER_SPEC: u8 = 20;
const HANDSHAKE: u8 = 22;
const SERVER_HELLO_DONE: u8 = 14;

/// The handshake messages (header included) of one direction of a TLS 1.2 connection, up to
/// its ChangeCipherSpec; `None` if the octets are not that.
fn handshake_messages(records: &[u8]) -> Option<Vec<Vec<u8>>> {
    // Messages may span records: the records' payloads are joined first.
    let mut stream = Vec::new();
    let mut rest = records;
    loop {
        let header = rest.get(..5)?;
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let payload = rest.get(5..5 + length)?;
        match header[0] {
            CHANGE_CIPHER_SPEC => break,
            HANDSHAKE => stream.extend_from_slice(payload),
            _ => return None,
        }
        rest = &rest[5 + length..];
    }
    let mut messages = Vec::new();
    let mut rest = stream.as_slice();
    while !rest.is_empty() {
        let header = rest.get(..4)?;
        let length = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let message = rest.get(..4 + length)?;
        messages.push(message.to_vec());
        rest = &rest[4 + length..];
    }
    Some(messages)
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let this = &mut *self;
        if let Some(recording) = &mut this.recording
            && !record(&mut recording.read, &buf.filled()[before..])
        {
            this.recording = None;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        let this = &mut *self;
        if let (Poll::Ready(Ok(n)), Some(recording)) = (&polled, &mut this.recording)
            && !record(&mut recording.written, &buf[..*n])
        {
            this.recording = None;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Keeps `octets`; false past [`MAX_RECORDED`] in all (then the handshake is not followed).
fn record(kept: &mut Vec<u8>, octets: &[u8]) -> bool {
    if kept.len() + octets.len() > MAX_RECORDED {
        return false;
    }
    kept.extend_from_slice(octets);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
        let length = u16::try_from(payload.len()).unwrap().to_be_bytes();
        [&[content_type, 3, 3, length[0], length[1]][..], payload].concat()
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let length = u32::try_from(body.len()).unwrap().to_be_bytes();
        [&[kind, length[1], length[2], length[3]][..], body].concat()
    }

    #[test]
    fn messages_are_read_across_records_up_to_change_cipher_spec() {
        let hello = message(2, &[1; 40]);
        let certificate = message(11, &[2; 3000]);
        let done = message(SERVER_HELLO_DONE, &[]);
        // The hello and half the certificate in one record, the rest in another.
        let first = [hello.as_slice(), &certificate[..1000]].concat();
        let second = [&certificate[1000..], done.as_slice()].concat();
        let octets = [
            record(HANDSHAKE, &first),
            record(HANDSHAKE, &second),
            record(CHANGE_CIPHER_SPEC, &[1]),
            // Encrypted from here on: never read.
            record(HANDSHAKE, &[0xff; 40]),
        ]
        .concat();
        assert_eq!(handshake_messages(&octets), Some(vec![hello, certificate, done]));
    }

    #[test]
    fn octets_that_are_not_a_whole_tls_1_2_handshake_give_nothing() {
        let hello = record(HANDSHAKE, &message(1, &[0; 40]));
        // No ChangeCipherSpec yet, a cut record, an alert, a message longer than its records.
        assert_eq!(handshake_messages(&hello), None);
        let cut = [&hello[..20], &record(CHANGE_CIPHER_SPEC, &[1])[..]].concat();
        assert_eq!(handshake_messages(&cut), None);
        let alert = [record(21, &[2, 40]), record(CHANGE_CIPHER_SPEC, &[1])].concat();
        assert_eq!(handshake_messages(&alert), None);
        let long = [record(HANDSHAKE, &message(1, &[0; 40])[..30]), record(20, &[1])].concat();
        assert_eq!(handshake_messages(&long), None);
    }

    #[test]
    fn a_master_secret_is_taken_once_and_only_the_latest_are_kept() {
        let secrets = MasterSecrets::default();
        assert!(!secrets.will_log("CLIENT_HANDSHAKE_TRAFFIC_SECRET"));
        for n in 0..=MAX_WAITING_SECRETS {
            let random = [(n % 256) as u8, (n / 256) as u8].repeat(16);
            secrets.log("CLIENT_RANDOM", &random, &[n as u8; 48]);
        }
        // The first one was dropped for the newest.
        assert_eq!(secrets.take(&[0, 0].repeat(16)), None);
        let last = [(MAX_WAITING_SECRETS % 256) as u8, (MAX_WAITING_SECRETS / 256) as u8];
        assert!(secrets.take(&last.repeat(16)).is_some());
        assert!(secrets.take(&last.repeat(16)).is_none());
    }
}
