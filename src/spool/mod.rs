//! The durable webhook spool: verified webhooks Laravel could not take, kept on disk until it does.
//!
//! One [`Queue`] per webhook route, in its own directory under `spool.dir`:
//!
//! - `NNNNNNNNNNNN.seg`: append-only segment files of [`record`] frames (a new one past
//!   [`SEGMENT_BYTES`]); a segment wholly delivered is deleted.
//! - `cursor`: where the first record not yet delivered starts (segment, offset, CRC-32). It is
//!   written after Laravel accepted a record, so a crash can only deliver a record again, which
//!   its delivery id lets Laravel ignore.
//! - `dead.seg` and `dead.log`: the dead letters (records Laravel refused, or that ran out of
//!   attempts or age) and one JSON line per dead letter with the reason.
//!
//! Appends are group-committed: concurrent enqueues share one `write` and one `fdatasync`, and
//! each is answered only once its bytes are synced. At start, a queue is read from its cursor to
//! its end; a torn last record (a crash mid-write) fails its checksum and is cut off.
//! `proxy::redelivery` sends each queue to Laravel in order.

mod files;
mod queue;
pub mod record;

pub use queue::Queue;

use crate::config::SpoolConfig;
use crate::metrics::SpoolMetrics;
use record::Record;
use serde_json::{json, Value};
use std::fs;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// A segment past this size is closed and the next appends go to a new one.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Dead letters listed by [`Spool::summary`] (the newest).
const DEAD_LISTED: usize = 100;

/// The directory of route `route`'s queue: its name where that is a safe file name, else the
/// name made safe with its checksum appended (so two routes never share a directory).
pub fn dir_name(route: &str) -> String {
    let safe: String = route
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    match safe == route && !safe.is_empty() {
        true => safe,
        false => format!("{safe}-{:08x}", crc32fast::hash(route.as_bytes())),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The spool: its queues and the bytes they hold on disk, bounded by `spool.max_bytes`.
pub struct Spool {
    conf: SpoolConfig,
    metrics: SpoolMetrics,
    queues: Mutex<Vec<Arc<Queue>>>,
    /// Bytes waiting or dead across queues.
    used: Arc<AtomicU64>,
    /// Woken when a queue is opened, for the delivery service to start its loop.
    opened: Notify,
}

impl Spool {
    /// The spool in `conf.dir` (created if missing). Queues are opened by [`Spool::queue`].
    pub fn open(conf: SpoolConfig, metrics: SpoolMetrics) -> io::Result<Arc<Spool>> {
        fs::create_dir_all(&conf.dir)?;
        Ok(Arc::new(Spool {
            conf,
            metrics,
            queues: Mutex::new(Vec::new()),
            used: Arc::new(AtomicU64::new(0)),
            opened: Notify::new(),
        }))
    }

    /// Route `route`'s queue, opened (and recovered from disk) the first time.
    pub fn queue(&self, route: &str) -> io::Result<Arc<Queue>> {
        let mut queues = lock(&self.queues);
        if let Some(queue) = queues.iter().find(|q| q.route == route) {
            return Ok(queue.clone());
        }
        let dir = self.conf.dir.join(dir_name(route));
        let queue = Arc::new(Queue::open(route, dir, SEGMENT_BYTES, self.used.clone())?);
        self.used.fetch_add(
            queue.bytes.load(Relaxed) + queue.dead_bytes.load(Relaxed),
            Relaxed,
        );
        let m = &self.metrics;
        for counter in [&m.enqueued, &m.delivered, &m.buried] {
            counter.with_label_values(&[route]);
        }
        queues.push(queue.clone());
        self.opened.notify_one();
        Ok(queue)
    }

    /// Every open queue, in the order opened.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        lock(&self.queues).clone()
    }

    fn find(&self, route: &str) -> io::Result<Arc<Queue>> {
        lock(&self.queues)
            .iter()
            .find(|q| q.route == route)
            .cloned()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no spool queue for route {route}"),
                )
            })
    }

    /// Webhooks of `route` waiting for Laravel.
    pub fn depth(&self, route: &str) -> u64 {
        self.find(route).map_or(0, |q| q.depth.load(Relaxed))
    }

    /// Appends `record` to `route`'s queue; returns once it is synced to disk. Fails when the
    /// spool is full or the disk fails: nothing was kept.
    pub async fn enqueue(&self, route: &str, record: &Record) -> io::Result<()> {
        let queue = self.queue(route)?;
        let frame = record.frame();
        let len = frame.len() as u64;
        let before = self.used.fetch_add(len, Relaxed);
        if before + len > self.conf.max_bytes {
            self.used.fetch_sub(len, Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "the spool is full (spool.max_bytes: {})",
                    self.conf.max_bytes
                ),
            ));
        }
        match queue.append(frame, 1).await {
            Ok(()) => {
                self.metrics.enqueued.with_label_values(&[route]).inc();
                Ok(())
            }
            Err(e) => {
                self.used.fetch_sub(len, Relaxed);
                Err(e)
            }
        }
    }

    /// Laravel took `queue`'s head record (`len` bytes): on to the next.
    pub(crate) fn delivered(&self, queue: &Queue, len: u64) -> io::Result<()> {
        queue.advance(len)?;
        self.used.fetch_sub(len, Relaxed);
        self.metrics
            .delivered
            .with_label_values(&[&queue.route])
            .inc();
        Ok(())
    }

    /// Moves `queue`'s head record to its dead letters with `reason`.
    pub(crate) async fn bury(
        &self,
        queue: &Queue,
        record: &Record,
        len: u64,
        reason: &str,
    ) -> io::Result<()> {
        tracing::warn!(route = %queue.route, id = %record.id, %reason, "spool: a webhook went to the dead letters");
        queue.bury(record, reason).await?;
        queue.advance(len)?;
        self.metrics.buried.with_label_values(&[&queue.route]).inc();
        Ok(())
    }

    /// Puts `route`'s dead letters back at the end of its queue (same delivery ids, a fresh
    /// `max_age`): how many.
    pub async fn replay(&self, route: &str) -> io::Result<usize> {
        self.find(route)?.replay().await
    }

    /// Deletes `route`'s dead letters: how many.
    pub async fn purge(&self, route: &str) -> io::Result<usize> {
        let queue = self.find(route)?;
        let mut dead = queue.dead.lock().await;
        let (count, bytes) = (
            queue.dead_count.load(Relaxed),
            queue.dead_bytes.load(Relaxed),
        );
        dead.clear(&queue)?;
        self.used.fetch_sub(bytes, Relaxed);
        Ok(count as usize)
    }

    /// What `GET /admin/spool` shows.
    pub fn summary(&self) -> Value {
        let routes: Vec<Value> = self
            .queues()
            .iter()
            .map(|q| {
                json!({
                    "route": q.route,
                    "depth": q.depth.load(Relaxed),
                    "bytes": q.bytes.load(Relaxed),
                    "oldest_age_seconds": q.oldest_age_seconds(),
                    "dead": q.dead_count.load(Relaxed),
                    "dead_letters": q.dead_letters(),
                })
            })
            .collect();
        json!({
            "dir": self.conf.dir,
            "bytes": self.used.load(Relaxed),
            "max_bytes": self.conf.max_bytes,
            "routes": routes,
        })
    }

    /// Sets the scrape-time gauges.
    pub fn export_gauges(&self) {
        let m = &self.metrics;
        for q in self.queues() {
            let route = [q.route.as_str()];
            let gauge = |g: &prometheus::IntGaugeVec, v: u64| {
                g.with_label_values(&route).set(v as i64);
            };
            gauge(&m.depth, q.depth.load(Relaxed));
            gauge(&m.bytes, q.bytes.load(Relaxed));
            gauge(&m.oldest_age, q.oldest_age_seconds());
            gauge(&m.dead, q.dead_count.load(Relaxed));
        }
    }

    pub(crate) fn config(&self) -> &SpoolConfig {
        &self.conf
    }

    /// Waits until a queue is opened (at once if one was since the last wait).
    pub(crate) async fn queue_opened(&self) {
        self.opened.notified().await
    }
}

/// The time as Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
