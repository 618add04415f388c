//! Whole frames waiting to be written to one client. A broadcast's frame,
//! made once, is queued for every recipient as it is, without a copy; a
//! batch of frames goes out in one vectored write.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::AsyncWrite;

use crate::front::websocket::outgoing::Frame;

/// Frames handed to the kernel in one call at most.
const MAX_SLICES: usize = 64;

/// Boxed while frames wait, gone once they are out: an idle connection
/// holds one empty pointer.
#[derive(Default)]
pub struct WriteQueue {
    queued: Option<Box<Queued>>,
}

#[derive(Default)]
struct Queued {
    frames: VecDeque<Frame>,
    /// Bytes of the first frame already written.
    written: usize,
    len: usize,
    /// The last frame queued is a pong none of which is written yet.
    pong_last: bool,
}

impl WriteQueue {
    pub fn push(&mut self, frame: Frame) {
        let queued = self.queued.get_or_insert_default();
        queued.len += frame.len();
        queued.frames.push_back(frame);
        queued.pong_last = false;
    }

    /// Queues a pong, which takes the place of one still waiting at the
    /// end of the queue: one pong answers every ping not yet answered
    /// (RFC 6455, 5.5.3), so a client that pings without reading holds
    /// one pong here, not one per ping.
    pub fn push_pong(&mut self, frame: Frame) {
        if let Some(queued) = self.queued.as_mut() {
            let partly_written = queued.frames.len() == 1 && queued.written > 0;
            if queued.pong_last && !partly_written {
                let replaced = queued.frames.pop_back().expect("a waiting pong is queued");
                queued.len -= replaced.len();
            }
        }
        self.push(frame);
        self.queued.as_mut().expect("just pushed").pong_last = true;
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.queued.as_ref().map_or(0, |queued| queued.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes everything waiting; once all is out, the queue goes too, so
    /// an idle connection holds none.
    pub fn poll_write_to<S: AsyncWrite + Unpin>(&mut self, io: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(queued) = self.queued.as_mut() else { return Poll::Ready(Ok(())) };
        // A stream that cannot write vectored (TLS) gets one buffer per call.
        if !io.is_write_vectored() && queued.frames.len() > 1 {
            let mut joined = BytesMut::with_capacity(queued.len);
            queued.unwritten().for_each(|part| joined.extend_from_slice(part));
            queued.frames = VecDeque::from([Frame::Own(joined.freeze())]);
            queued.written = 0;
        }
        while queued.len > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count =
                slices.iter_mut().zip(queued.unwritten()).map(|(slice, part)| *slice = IoSlice::new(part)).count();
            let n = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            queued.advance(n);
        }
        self.queued = None;
        Poll::Ready(Ok(()))
    }

    /// The next frame to go out (tests compare what two queues share).
    #[cfg(test)]
    pub fn front(&self) -> Option<&Frame> {
        self.queued.as_ref()?.frames.front()
    }

    #[cfg(test)]
    pub fn holds_storage(&self) -> bool {
        self.queued.is_some()
    }

    #[cfg(test)]
    fn queued(&self) -> &Queued {
        self.queued.as_ref().expect("frames wait")
    }
}

impl Queued {
    /// What is left to write of each frame, in order.
    fn unwritten(&self) -> impl Iterator<Item = &[u8]> {
        self.frames.iter().enumerate().map(|(i, frame)| &frame[if i == 0 { self.written } else { 0 }..])
    }

    fn advance(&mut self, n: usize) {
        self.len -= n;
        self.written += n;
        while let Some(front) = self.frames.front().filter(|front| self.written >= front.len()) {
            self.written -= front.len();
            self.frames.pop_front();
        }
        self.pong_last &= !self.frames.is_empty();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[test]
    fn a_pong_waiting_at_the_end_is_replaced_by_the_next() {
        let own = |bytes: &'static [u8]| Frame::Own(bytes::Bytes::from_static(bytes));
        let mut queue = WriteQueue::default();
        for _ in 0..10_000 {
            queue.push_pong(own(b"p1"));
        }
        assert_eq!((queue.queued().frames.len(), queue.len()), (1, 2), "one pong for all the pings");
        queue.push(own(b"message"));
        queue.push_pong(own(b"p2"));
        queue.push_pong(own(b"p3"));
        let frames: Vec<&[u8]> = queue.queued().frames.iter().map(|f| &f[..]).collect();
        assert_eq!(frames, [&b"p1"[..], b"message", b"p3"], "a message keeps its place; the last pong answers");
        assert_eq!(queue.len(), 11);
        queue.queued.as_mut().unwrap().advance(10);
        queue.push_pong(own(b"p4"));
        assert_eq!(queue.queued().unwritten().collect::<Vec<_>>(), [&b"3"[..], b"p4"], "a pong being written stays");
    }

    #[tokio::test]
    async fn frames_go_out_whole_in_order_across_partial_writes() {
        // A 7-byte pipe: every write is partial.
        let (mut client, mut server) = tokio::io::duplex(7);
        let mut queue = WriteQueue::default();
        for frame in ["first", "second", "third"] {
            queue.push(Frame::Own(bytes::Bytes::from(frame)));
        }
        assert_eq!(queue.len(), 16);
        let reader = tokio::spawn(async move {
            let mut got = vec![0; 16];
            client.read_exact(&mut got).await.unwrap();
            got
        });
        std::future::poll_fn(|cx| queue.poll_write_to(&mut server, cx)).await.unwrap();
        assert_eq!(reader.await.unwrap(), b"firstsecondthird");
        assert!(queue.is_empty() && !queue.holds_storage(), "nothing kept once written");
    }
}
