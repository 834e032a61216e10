//! RawSocket: the 4-octet handshake, then length-prefixed frames (spec, "WAMP-over-RawSocket").

use std::task::Poll;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use junction_wire::Serializer;
use junction_wire::rawsocket::{FrameHeader, FrameKind, Handshake};

use crate::config::TransportConfig;
use crate::connection::{Incoming, Link, LinkError};
use crate::input::Input;
use crate::output::Output;

/// The most read from the socket in one call while no frame is in progress (the rest of a frame
/// whose header has arrived is read into room of its size; see [`Input`]).
const READ_SIZE: usize = 8 * 1024;

/// Reads the client's handshake and answers it. On refusal, sends the spec's error reply and
/// returns `None`.
pub(crate) async fn accept<R, W>(
    mut reader: R,
    mut writer: W,
    config: &TransportConfig,
) -> Result<Option<RawSocketLink<R, W>>, LinkError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut request = [0u8; 4];
    reader.read_exact(&mut request).await?;
    let (handshake, serializer) = match Handshake::parse(request) {
        Ok(ok) => ok,
        Err(error) => {
            if let Some(reply) = error.reply() {
                writer.write_all(&reply).await?;
                writer.flush().await?;
            }
            tracing::debug!(%error, "refused a RawSocket handshake");
            return Ok(None);
        }
    };
    let reply = Handshake::reply(serializer, config.max_message_size);
    writer.write_all(&reply).await?;
    writer.flush().await?;
    // The limit we announced, which the client must respect (a power of two).
    let announced = 1usize << (9 + (reply[1] >> 4));
    Ok(Some(RawSocketLink {
        reader,
        writer,
        input: Input::default(),
        output: Output::default(),
        limit: announced,
        serializer,
        peer_max: handshake.max_length,
    }))
}

/// An established RawSocket connection. Holds no buffer while idle (until 2026-11-26 it kept
/// an 8 KiB read buffer and an 8 KiB write buffer from the handshake on).
pub(crate) struct RawSocketLink<R, W> {
    reader: R,
    writer: W,
    /// Octets read and not parsed yet.
    input: Input,
    /// Frames to write.
    output: Output,
    /// The largest frame we announced we accept: a longer one is refused from its header,
    /// before its body is buffered.
    limit: usize,
    serializer: Serializer,
    peer_max: usize,
}

impl<R, W> RawSocketLink<R, W>
where
    W: AsyncWrite + Unpin,
{
    pub(crate) fn serializer(&self) -> Serializer {
        self.serializer
    }

    /// Gathers one frame (see [`Output::frame`]).
    async fn write_frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), LinkError> {
        let header = FrameHeader::encode(kind, payload.len());
        Ok(self.output.frame(&mut self.writer, &header, payload).await?)
    }
}

impl<R, W> Link for RawSocketLink<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    fn buffered(&mut self) -> Result<Poll<Option<Incoming>>, LinkError> {
        let Some(header) = self.input.bytes().first_chunk::<4>() else {
            return Ok(Poll::Pending);
        };
        let header = FrameHeader::parse(*header, self.limit)?;
        if !self.input.has(4 + header.length) {
            return Ok(Poll::Pending);
        }
        let body = self.input.take(4, header.length).freeze();
        Ok(Poll::Ready(Some(match header.kind {
            FrameKind::Message => Incoming::Message(body),
            FrameKind::Ping => Incoming::Ping(body),
            FrameKind::Pong => Incoming::Heartbeat,
        })))
    }

    async fn fill(&mut self) -> Result<usize, LinkError> {
        Ok(self.input.fill(&mut self.reader, READ_SIZE).await?)
    }

    async fn send(&mut self, message: &[u8]) -> Result<(), LinkError> {
        self.write_frame(FrameKind::Message, message).await
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        self.output.write_out(&mut self.writer).await?;
        Ok(self.writer.flush().await?)
    }

    async fn pong(&mut self, payload: Bytes) -> Result<(), LinkError> {
        self.write_frame(FrameKind::Pong, &payload).await?;
        self.flush().await
    }

    async fn ping(&mut self) -> Result<(), LinkError> {
        self.write_frame(FrameKind::Ping, b"junction").await?;
        self.flush().await
    }

    async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = self.writer.shutdown().await;
    }

    fn peer_max_message(&self) -> usize {
        self.peer_max
    }
}
