//! Fan-out lanes: one publish's socket writes spread over the gateway's `threads` cores.
//!
//! A channel's subscribers fall into `n` lanes by connection id. Lane 0 is written by the
//! publishing thread itself; every other lane has a thread of its own, handed each publish once
//! (the channel, the frame, who is excepted), in order, so a subscriber still sees a channel's
//! events in the order they were published. With one lane (`threads: 1`) there is no thread and
//! no hand-off: the publisher writes every socket.
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
    /// `n` lanes: the publisher's own and `n - 1` threads.
    pub fn new(n: usize) -> std::io::Result<Self> {
        let of = n.max(1) as u64;
        let mut threads = Vec::new();
        for index in 1..of {
            let (tx, rx) = sync_channel::<Job>(BACKLOG);
            let lane = Lane { index, of };
            std::thread::Builder::new()
                .name(format!("hub-lane-{index}"))
                .spawn(move || {
                    // Ends when the hub (every sender) is gone.
                    while let Ok(job) = rx.recv() {
                        super::deliver::write_lane(&job, lane);
                    }
                })?;
            threads.push(tx);
        }
        Ok(Self { threads })
    }

    /// The publisher's lane, having handed the publish to every other lane (`job` makes it).
    pub(super) fn hand_off(&self, job: impl Fn() -> Job) -> Lane {
        for tx in &self.threads {
            // A lane thread only ends with the process; a failed send has nothing to deliver.
            let _ = tx.send(job());
        }
        Lane {
            index: 0,
            of: self.threads.len() as u64 + 1,
        }
    }
}
