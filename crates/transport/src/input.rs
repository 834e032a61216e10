//! The read side of a link: octets read from the connection and not parsed yet, kept on the
//! heap only while there are some.
//!
//! A connection waiting for its next message holds no read buffer: the link reads through a
//! buffer on the stack of one poll and moves only the octets read to the heap. Once a frame's
//! header says how long the frame is, the rest of it is read straight into room of that size,
//! in as few system calls as the socket allows. (A read buffer allocated when the connection
//! opens, as tokio-tungstenite's or `FramedRead`'s, was most of what an idle session cost:
//! docs/benchmarks.md, "Memory per idle session".)

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// The most read from the socket in one call before a frame's length is known: the size of the
/// buffer on the stack.
pub(crate) const STACK_READ: usize = 64 * 1024;

/// Octets read and not parsed yet.
#[derive(Default)]
pub(crate) struct Input {
    /// Empty and unallocated between messages.
    bytes: BytesMut,
    /// Octets still missing from the frame at the head of `bytes`, for which `bytes` has room.
    missing: usize,
}

impl Input {
    /// What was read and not taken yet.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The frame at the head is `total` octets long: whether it is all there. If not, makes
    /// room for the rest, so that the next [`Input::fill`] reads it in one go.
    pub(crate) fn has(&mut self, total: usize) -> bool {
        if self.bytes.len() >= total {
            self.missing = 0;
            return true;
        }
        self.missing = total - self.bytes.len();
        self.bytes.reserve(self.missing);
        false
    }

    /// Takes `skip` octets (a header) and then `len` octets (the payload) off the head. When
    /// nothing is left, the payload owns the allocation alone: nothing stays behind.
    pub(crate) fn take(&mut self, skip: usize, len: usize) -> BytesMut {
        self.bytes.advance(skip);
        let payload = self.bytes.split_to(len);
        if self.bytes.is_empty() {
            self.bytes = BytesMut::new();
        }
        payload
    }

    /// Reads more octets from `io`; 0 when the peer closed. `read_size` (at most
    /// [`STACK_READ`]) bounds the read while no frame is in progress. Cancel-safe: what a read
    /// returns is kept in the same poll.
    pub(crate) async fn fill<R>(&mut self, io: &mut R, read_size: usize) -> std::io::Result<usize>
    where
        R: AsyncRead + Unpin,
    {
        if self.missing > 0 && self.bytes.capacity() - self.bytes.len() >= self.missing {
            return io.read_buf(&mut self.bytes).await;
        }
        let read_size = read_size.clamp(1, STACK_READ);
        let bytes = &mut self.bytes;
        std::future::poll_fn(|cx| {
            let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
            let mut buf = ReadBuf::uninit(&mut stack[..read_size]);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
            bytes.extend_from_slice(buf.filled());
            Poll::Ready(Ok(buf.filled().len()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_frame_is_read_into_room_of_its_size_and_nothing_stays_after_it() {
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 20);
        theirs.write_all(&[7u8; 100_000]).await.unwrap();
        let mut input = Input::default();
        // 16 octets through the stack buffer, then the rest straight into the room made.
        assert_eq!(input.fill(&mut ours, 16).await.unwrap(), 16);
        assert!(!input.has(100_000));
        while !input.has(100_000) {
            assert!(input.fill(&mut ours, 16).await.unwrap() > 16);
        }
        let frame = input.take(4, 99_996);
        assert_eq!(frame.len(), 99_996);
        assert_eq!(input.bytes.capacity(), 0);
    }
}
