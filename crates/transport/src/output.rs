//! The write side of a link: frames gather in a buffer until the driver flushes its batch, and
//! the buffer is given back after each flush, so that an idle connection keeps none.
//!
//! The buffer is borrowed: first the one the thread keeps, else one from a pool shared by every
//! connection. Allocating and freeing one per batch, often on two threads, had threads waiting
//! on each other's allocator locks (docs/benchmarks.md, "Third round"); the thread's own spare
//! spares a single frame (an RPC message, mostly) its allocation and the pool's shared atomics.

use std::cell::Cell;
use std::sync::LazyLock;

use bytes::Buf;
use crossbeam_queue::ArrayQueue;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Frames gather until the buffer would hold this much; then it is written out with the frame.
const WRITE_BUFFER: usize = 8 * 1024;

/// Batch buffers kept for reuse (512 KiB at most); past that, a returned buffer is freed.
const POOLED: usize = 64;

static POOL: LazyLock<ArrayQueue<Vec<u8>>> = LazyLock::new(|| ArrayQueue::new(POOLED));

thread_local! {
    /// The buffer this thread lends first.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A whole, empty buffer: the thread's spare, one from the pool, or a new one.
fn lend() -> Vec<u8> {
    let spare = SPARE.try_with(Cell::take).unwrap_or_default();
    if spare.capacity() == WRITE_BUFFER {
        return spare;
    }
    POOL.pop().unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER))
}

/// Keeps a whole buffer for reuse (as the thread's spare, or in the pool); frees any other.
fn give_back(mut bytes: Vec<u8>) {
    if bytes.capacity() != WRITE_BUFFER {
        return;
    }
    bytes.clear();
    let displaced = SPARE.try_with(|spare| spare.replace(bytes));
    if let Ok(displaced) = displaced
        && displaced.capacity() == WRITE_BUFFER
    {
        let _ = POOL.push(displaced);
    }
}

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
            if self.bytes.capacity() == 0 {
                self.bytes = lend();
            }
            self.bytes.extend_from_slice(header);
            self.bytes.extend_from_slice(payload);
            return Ok(());
        }
        if self.bytes.is_empty() {
            io.write_all_buf(&mut Buf::chain(header, payload)).await?;
        } else {
            self.bytes.extend_from_slice(header);
            io.write_all_buf(&mut Buf::chain(&self.bytes[..], payload)).await?;
            self.bytes.clear();
        }
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
        give_back(std::mem::take(&mut self.bytes));
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
        assert_eq!(output.capacity(), WRITE_BUFFER, "one frame: a whole buffer");
        for _ in 0..150 {
            output.frame(&mut io, &[0x82, 38], &[7; 38]).await.unwrap();
        }
        assert_eq!(output.capacity(), WRITE_BUFFER, "no growth beyond it");
        output.write_out(&mut io).await.unwrap();
        assert_eq!(output.capacity(), 0);
    }
}
