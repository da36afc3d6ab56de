//! Fan-out lanes: one publish's socket writes spread over the gateway's `threads` cores.
//!
//! A channel's subscribers fall into `n` lanes by connection id. Lane 0 is written by the
//! publishing thread itself; every other lane has a thread of its own, handed each publish once
//! (the channel, the frame, who is excepted), in order, so a subscriber still sees a channel's
//! events in the order they were published. A lane with no subscriber of the channel is not
//! handed the publish (a subscriber joining it later gets later events through it, so the order
//! holds). With one lane (`threads: 1`) there is no thread and no hand-off: the publisher writes
//! every socket.
//!
//! A lane's backlog is bounded ([`BACKLOG`] publishes): a publisher that outruns a lane waits
//! for it, as it would for its own share of the writes.

use super::{Channel, Frame};
use crate::metrics::AppMetrics;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::Instant;

/// Publishes a lane may have waiting before its publishers wait for it.
const BACKLOG: usize = 1024;

/// Lanes at most (one bit each in [`occupied`]'s answer); more threads add none.
const MAX_LANES: usize = 64;

/// Which of the `of` lanes a delivery writes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lane {
    pub index: u64,
    pub of: u64,
}

impl Lane {
    /// Whether connection `id` is in this lane.
    pub fn holds(self, id: u64) -> bool {
        id % self.of == self.index
    }
}

/// One publish as a lane thread gets it.
pub(super) struct Job {
    pub metrics: AppMetrics,
    pub channel: Arc<Channel>,
    pub frame: Frame,
    pub except: Option<Box<str>>,
    pub published: Instant,
}

/// The lane threads (none with one lane).
#[derive(Default)]
pub struct Lanes {
    threads: Vec<SyncSender<Job>>,
}

impl Lanes {
    /// `n` lanes (at most [`MAX_LANES`]): the publisher's own and `n - 1` threads.
    pub fn new(n: usize) -> std::io::Result<Self> {
        let of = n.clamp(1, MAX_LANES) as u64;
        let mut threads = Vec::new();
        for index in 1..of {
            let (tx, rx) = sync_channel::<Job>(BACKLOG);
            let lane = Lane { index, of };
            std::thread::Builder::new()
                .name(format!("hub-lane-{index}"))
                .spawn(move || {
                    // Ends when the hub (every sender) is gone.
                    while let Ok(job) = rx.recv() {
                        job.write(lane);
                    }
                })?;
            threads.push(tx);
        }
        Ok(Self { threads })
    }

    /// The lane the publisher writes itself (lane 0 of all of them).
    pub(super) fn own(&self) -> Lane {
        Lane {
            index: 0,
            of: self.threads.len() as u64 + 1,
        }
    }

    /// Hands the publish (`job` makes it) to every lane thread whose bit is set in `occupied`.
    pub(super) fn hand_off(&self, occupied: u64, job: impl Fn() -> Job) {
        for (index, tx) in (1..).zip(&self.threads) {
            if occupied & (1 << index) != 0 {
                // A lane thread only ends with the process; a failed send has nothing to deliver.
                let _ = tx.send(job());
            }
        }
    }
}

/// The lanes (one bit each) that hold at least one of connections `ids`, when there are `of`.
pub(super) fn occupied(ids: impl Iterator<Item = u64>, of: u64) -> u64 {
    let all = u64::MAX >> (64 - of);
    let mut bits = 0;
    for id in ids {
        bits |= 1 << (id % of);
        if bits == all {
            break;
        }
    }
    bits
}

impl Job {
    /// Writes this publish to the subscribers in `lane`.
    pub fn write(&self, lane: Lane) {
        let except = self.except.as_deref();
        super::deliver::write_lane(
            lane,
            &self.metrics,
            &self.channel,
            &self.frame,
            except,
            self.published,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_is_occupied_when_it_holds_a_subscriber() {
        assert_eq!(occupied([2, 4, 6].into_iter(), 2), 0b01);
        assert_eq!(occupied([7].into_iter(), 2), 0b10);
        assert_eq!(occupied([3, 4, 9].into_iter(), 3), 0b011);
        assert_eq!(occupied(std::iter::empty(), 4), 0);
        assert_eq!(occupied(0..1000, 64), u64::MAX);
        assert_eq!(occupied(0..10, 1), 1);
    }
}
