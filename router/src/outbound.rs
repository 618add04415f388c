//! A linked gateway's outbound queue. Pushes go in without waiting, so a
//! gateway that stops reading holds up no push to another; the link's
//! writer takes them out in batches. The queue is bounded in bytes: a
//! gateway that falls that far behind is cut off, its link closed, and it
//! links again and reports its sessions afresh.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use protocol::Frame;

/// What a queued frame costs beyond its two areas (the frame itself).
const FRAME_OVERHEAD: usize = 64;

/// Why a gateway was cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutOff {
    /// Its queue passed `--gateway-queue-bytes`.
    QueueFull,
    /// A write to it took longer than `--gateway-stall-ms`.
    Stalled,
    /// Nothing heard from it for three of its heartbeat intervals.
    Silent,
}

impl CutOff {
    pub const ALL: [CutOff; 3] = [CutOff::QueueFull, CutOff::Stalled, CutOff::Silent];

    pub fn label(self) -> &'static str {
        match self {
            CutOff::QueueFull => "queue_full",
            CutOff::Stalled => "stalled",
            CutOff::Silent => "silent",
        }
    }
}

pub struct Outbound {
    state: Mutex<State>,
    ready: Notify,
    max_bytes: usize,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    bytes: usize,
    cut: Option<CutOff>,
}

fn size(frame: &Frame) -> usize {
    FRAME_OVERHEAD + frame.sessions.len() + frame.data.len()
}

impl Outbound {
    pub fn new(max_bytes: usize) -> Outbound {
        Outbound { state: Mutex::default(), ready: Notify::new(), max_bytes }
    }

    /// `--gateway-queue-bytes`.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Queues `frames`, all or none; false if the gateway is cut off, now
    /// (they did not fit) or before.
    pub fn push(&self, frames: Vec<Frame>) -> bool {
        let bytes: usize = frames.iter().map(size).sum();
        let mut state = self.state.lock().unwrap();
        if state.cut.is_some() {
            return false;
        }
        if state.bytes + bytes > self.max_bytes {
            drop(state);
            self.cut_off(CutOff::QueueFull);
            return false;
        }
        state.bytes += bytes;
        state.frames.extend(frames);
        drop(state);
        self.ready.notify_one();
        true
    }

    /// Cuts the gateway off (the first reason stands); what is queued is dropped.
    pub fn cut_off(&self, why: CutOff) {
        let mut state = self.state.lock().unwrap();
        state.cut.get_or_insert(why);
        state.frames = VecDeque::new();
        state.bytes = 0;
        drop(state);
        self.ready.notify_one();
    }

    /// Waits for frames and takes them all, for one write; the reason once
    /// the gateway is cut off. For the link's one writer.
    pub async fn take(&self) -> Result<VecDeque<Frame>, CutOff> {
        loop {
            {
                let mut state = self.state.lock().unwrap();
                if let Some(why) = state.cut {
                    return Err(why);
                }
                if !state.frames.is_empty() {
                    state.bytes = 0;
                    return Ok(std::mem::take(&mut state.frames));
                }
            }
            // A wake-up given before this wait is kept for it (one waiter).
            self.ready.notified().await;
        }
    }

    pub fn queued_bytes(&self) -> usize {
        self.state.lock().unwrap().bytes
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use protocol::FrameKind;

    fn frame(len: usize) -> Frame {
        Frame::new(FrameKind::SendAll, Bytes::new(), Bytes::from(vec![b'x'; len]))
    }

    #[tokio::test]
    async fn pushes_never_wait_and_the_writer_takes_them_in_one_batch() {
        let outbound = Outbound::new(1000);
        assert!(outbound.push(vec![frame(10)]));
        assert!(outbound.push(vec![frame(20), frame(30)]));
        assert_eq!(outbound.queued_bytes(), 60 + 3 * FRAME_OVERHEAD);
        let batch = outbound.take().await.unwrap();
        assert_eq!(batch.iter().map(|f| f.data.len()).collect::<Vec<_>>(), [10, 20, 30]);
        assert_eq!(outbound.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn a_push_past_the_bound_cuts_the_gateway_off_and_drops_the_queue() {
        let outbound = Outbound::new(400);
        assert!(outbound.push(vec![frame(200)]));
        assert!(!outbound.push(vec![frame(200)]), "past the bound");
        assert!(!outbound.push(vec![frame(1)]), "cut off for good");
        assert_eq!(outbound.queued_bytes(), 0);
        assert_eq!(outbound.take().await.unwrap_err(), CutOff::QueueFull);
    }

    #[tokio::test]
    async fn the_first_reason_to_cut_off_stands_and_wakes_the_writer() {
        let outbound = std::sync::Arc::new(Outbound::new(400));
        let writer = tokio::spawn({
            let outbound = outbound.clone();
            async move { outbound.take().await }
        });
        tokio::task::yield_now().await;
        outbound.cut_off(CutOff::Silent);
        outbound.cut_off(CutOff::Stalled);
        assert_eq!(writer.await.unwrap().unwrap_err(), CutOff::Silent);
    }
}
