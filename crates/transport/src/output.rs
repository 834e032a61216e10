//! The write side of a link: frames gather in a buffer until the driver flushes its batch, and
//! the buffer is released after each flush, so that an idle connection keeps none.
//!
//! A single frame (an RPC answer, mostly) gets a buffer of its own size. A batch of several (a
//! subscriber's events) borrows a whole buffer from a pool shared by every connection and gives
//! it back after the flush: allocating and freeing one per batch, often on two threads, had
//! threads waiting on each other's allocator locks (docs/benchmarks.md, "Third round").

use std::sync::LazyLock;

use bytes::Buf;
use crossbeam_queue::ArrayQueue;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Frames gather until the buffer would hold this much; then it is written out with the frame.
const WRITE_BUFFER: usize = 8 * 1024;

/// Batch buffers kept for reuse (512 KiB at most); past that, a returned buffer is freed.
const POOLED: usize = 64;

static POOL: LazyLock<ArrayQueue<Vec<u8>>> = LazyLock::new(|| ArrayQueue::new(POOLED));

/// Frames to write: unallocated between flushes.
#[derive(Default)]
pub(crate) struct Output {
    bytes: Vec<u8>,
}

impl Output {
    /// Gathers one frame (`header`, then `payload`). When it would take the buffer past
    /// [`WRITE_BUFFER`], writes the buffer and the frame out at once instead (without flushing
    /// the stream), in one vectored write that does not copy the payload: the buffer never
    /// grows to a large message's size.
    pub(crate) async fn frame<W>(
        &mut self,
        io: &mut W,
        header: &[u8],
        payload: &[u8],
    ) -> std::io::Result<()>
    where
        W: AsyncWrite + Unpin,
    {
        if self.bytes.len() + header.len() + payload.len() < WRITE_BUFFER {
            if self.bytes.is_empty() {
                self.bytes.reserve(header.len() + payload.len());
            } else if self.bytes.capacity() < WRITE_BUFFER {
                // A second frame means a batch: it moves to a whole buffer from the pool rather
                // than growing by doubling (half a dozen reallocations per batch).
                let mut batch = POOL.pop().unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER));
                batch.extend_from_slice(&self.bytes);
                self.bytes = batch;
            }
            self.bytes.extend_from_slice(header);
            self.bytes.extend_from_slice(payload);
            return Ok(());
        }
        self.bytes.extend_from_slice(header);
        let mut out = Buf::chain(&self.bytes[..], payload);
        io.write_all_buf(&mut out).await?;
        self.bytes.clear();
        Ok(())
    }

    /// Writes out what was gathered and releases the buffer (without flushing the stream).
    pub(crate) async fn write_out<W>(&mut self, io: &mut W) -> std::io::Result<()>
    where
        W: AsyncWrite + Unpin,
    {
        if !self.bytes.is_empty() {
            io.write_all(&self.bytes).await?;
        }
        let mut bytes = std::mem::take(&mut self.bytes);
        if bytes.capacity() == WRITE_BUFFER {
            bytes.clear();
            let _ = POOL.push(bytes);
        }
        Ok(())
    }

    /// The buffer's allocation, for tests that check an idle link keeps none.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_of_small_frames_gathers_in_one_whole_buffer() {
        let (mut output, mut io) = (Output::default(), tokio::io::sink());
        output.frame(&mut io, &[0x82, 38], &[7; 38]).await.unwrap();
        assert_eq!(output.capacity(), 40, "one frame: its own size");
        output.frame(&mut io, &[0x82, 38], &[7; 38]).await.unwrap();
        assert_eq!(output.capacity(), WRITE_BUFFER, "a second frame: the whole buffer");
        for _ in 0..150 {
            output.frame(&mut io, &[0x82, 38], &[7; 38]).await.unwrap();
        }
        assert_eq!(output.capacity(), WRITE_BUFFER, "no growth beyond it");
        output.write_out(&mut io).await.unwrap();
        assert_eq!(output.capacity(), 0);
    }
}
