//! RawSocket: the 4-octet handshake, then length-prefixed frames (spec, "WAMP-over-RawSocket").

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio_util::codec::{Decoder, FramedRead};

use junction_wire::Serializer;
use junction_wire::rawsocket::{FrameError, FrameHeader, FrameKind, Handshake};

use crate::config::TransportConfig;
use crate::connection::{Incoming, Link, LinkError};

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
        reader: FramedRead::new(reader, Frames { limit: announced }),
        writer: BufWriter::with_capacity(8 * 1024, writer),
        serializer,
        peer_max: handshake.max_length,
    }))
}

/// An established RawSocket connection.
pub(crate) struct RawSocketLink<R, W> {
    reader: FramedRead<R, Frames>,
    writer: BufWriter<W>,
    serializer: Serializer,
    peer_max: usize,
}

impl<R, W> RawSocketLink<R, W> {
    pub(crate) fn serializer(&self) -> Serializer {
        self.serializer
    }

    async fn write_frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), LinkError>
    where
        W: AsyncWrite + Unpin,
    {
        self.writer.write_all(&FrameHeader::encode(kind, payload.len())).await?;
        self.writer.write_all(payload).await?;
        Ok(())
    }
}

impl<R, W> Link for RawSocketLink<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    async fn recv(&mut self) -> Result<Option<Incoming>, LinkError> {
        match self.reader.next().await {
            Some(Ok((FrameKind::Message, body))) => Ok(Some(Incoming::Message(body))),
            Some(Ok((FrameKind::Ping, body))) => Ok(Some(Incoming::Ping(body))),
            Some(Ok((FrameKind::Pong, _))) => Ok(Some(Incoming::Heartbeat)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    async fn send(&mut self, message: Bytes) -> Result<(), LinkError> {
        self.write_frame(FrameKind::Message, &message).await
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
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
        let _ = self.writer.shutdown().await;
    }

    fn peer_max_message(&self) -> usize {
        self.peer_max
    }
}

/// Splits the byte stream into frames, refusing any frame over `limit` from its header alone,
/// before its body is buffered.
struct Frames {
    limit: usize,
}

impl Decoder for Frames {
    type Item = (FrameKind, Bytes);
    type Error = LinkError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, LinkError> {
        let Some(header) = src.first_chunk::<4>() else {
            return Ok(None);
        };
        let header = FrameHeader::parse(*header, self.limit)
            .map_err(|e: FrameError| LinkError::RawSocket(e))?;
        if src.len() < 4 + header.length {
            src.reserve(4 + header.length - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some((header.kind, src.split_to(header.length).freeze())))
    }
}
