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

pub mod record;

use crate::config::SpoolConfig;
use crate::metrics::SpoolMetrics;
use record::{read_frame, Frame, Record};
use serde_json::{json, Value};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, Notify};

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

/// A place in a queue: segment number and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    seg: u64,
    off: u64,
}

/// Frames waiting for the group commit, and who waits for them.
struct Pending {
    frames: Vec<u8>,
    count: u64,
    done: oneshot::Sender<io::Result<()>>,
}

/// The segment appends go to.
struct Writer {
    file: File,
    seg: u64,
    /// Bytes synced in it.
    len: u64,
}

/// The delivery side's place: the head record's segment, opened.
struct ReadPos {
    pos: Pos,
    file: Option<(u64, File)>,
}

/// The dead letters' files.
struct Dead {
    seg: File,
    log: File,
}

/// One route's queue (see the module's documentation for its files).
pub struct Queue {
    /// The route's name.
    pub route: String,
    dir: PathBuf,
    segment_bytes: u64,
    /// Records waiting, and their bytes.
    depth: AtomicU64,
    bytes: AtomicU64,
    /// The head record's `enqueued_ms` once the delivery loop read it (0: none).
    oldest_ms: AtomicU64,
    dead_count: AtomicU64,
    dead_bytes: AtomicU64,
    /// Where the synced data ends.
    tail: Mutex<Pos>,
    writer: Mutex<Writer>,
    pending: Mutex<Vec<Pending>>,
    /// Held while a batch is written (the enqueues that find it taken wait for it).
    leader: Arc<tokio::sync::Mutex<()>>,
    /// Woken when records are appended.
    appended: Notify,
    read: Mutex<ReadPos>,
    cursor: File,
    dead: tokio::sync::Mutex<Dead>,
    /// The spool's byte count (the dead letters' part changes here).
    used: Arc<AtomicU64>,
}

fn seg_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:012}.seg"))
}

/// The segment numbers in `dir`, sorted.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            if name.len() == 16 {
                segs.push(n);
            }
        }
    }
    segs.sort_unstable();
    Ok(segs)
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

/// Counts the intact frames of `file` from `off`, cutting off a torn end (logged): (count,
/// bytes).
fn scan(file: &File, path: &Path, route: &str, mut off: u64) -> io::Result<(u64, u64)> {
    let (mut count, mut bytes) = (0, 0);
    loop {
        match read_frame(file, off)? {
            Frame::Record(_, len) => {
                count += 1;
                bytes += len;
                off += len;
            }
            Frame::End => return Ok((count, bytes)),
            Frame::Torn => {
                let cut = file.metadata()?.len() - off;
                tracing::warn!(route, file = %path.display(), offset = off, bytes = cut,
                    "spool: a torn record (a crash mid-write) was cut off");
                file.set_len(off)?;
                file.sync_all()?;
                return Ok((count, bytes));
            }
        }
    }
}

impl Queue {
    /// Opens (creating, or recovering) the queue in `dir`.
    fn open(
        route: &str,
        dir: PathBuf,
        segment_bytes: u64,
        used: Arc<AtomicU64>,
    ) -> io::Result<Queue> {
        fs::create_dir_all(&dir)?;
        let mut segs = segments(&dir)?;
        if segs.is_empty() {
            File::create(seg_path(&dir, 1))?;
            File::open(&dir)?.sync_all()?;
            segs.push(1);
        }
        let (first, last) = (segs[0], segs[segs.len() - 1]);
        // Not in append mode: `pwrite` on an `O_APPEND` file appends on Linux.
        let cursor = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("cursor"))?;
        let start = read_cursor(&cursor)
            .filter(|p| (first..=last).contains(&p.seg))
            .unwrap_or(Pos { seg: first, off: 0 });
        let (mut depth, mut bytes) = (0, 0);
        for &seg in &segs {
            let path = seg_path(&dir, seg);
            if seg < start.seg {
                // Wholly delivered (a crash came between the cursor's move and the delete).
                fs::remove_file(&path)?;
                continue;
            }
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let from = if seg == start.seg { start.off } else { 0 };
            let from = from.min(file.metadata()?.len());
            let (n, b) = scan(&file, &path, route, from)?;
            depth += n;
            bytes += b;
        }
        let last_path = seg_path(&dir, last);
        let file = open_rw(&last_path)?;
        let len = file.metadata()?.len();
        let dead_seg = open_rw(&dir.join("dead.seg"))?;
        let (dead_count, dead_bytes) = scan(&dead_seg, &dir.join("dead.seg"), route, 0)?;
        let dead_log = open_rw(&dir.join("dead.log"))?;
        let queue = Queue {
            route: route.to_string(),
            segment_bytes,
            depth: AtomicU64::new(depth),
            bytes: AtomicU64::new(bytes),
            oldest_ms: AtomicU64::new(0),
            dead_count: AtomicU64::new(dead_count),
            dead_bytes: AtomicU64::new(dead_bytes),
            tail: Mutex::new(Pos {
                seg: last,
                off: len,
            }),
            writer: Mutex::new(Writer {
                file,
                seg: last,
                len,
            }),
            pending: Mutex::new(Vec::new()),
            leader: Arc::new(tokio::sync::Mutex::new(())),
            appended: Notify::new(),
            read: Mutex::new(ReadPos {
                pos: start,
                file: None,
            }),
            cursor,
            dead: tokio::sync::Mutex::new(Dead {
                seg: dead_seg,
                log: dead_log,
            }),
            used,
            dir,
        };
        queue.save_cursor(start)?;
        if depth > 0 {
            tracing::info!(route, depth, bytes, "spool: resuming a queue");
        }
        Ok(queue)
    }

    /// Appends `frames` (`count` records) and returns once they are synced to disk. Group
    /// commit: whoever takes the leader's lock writes everything waiting in one `write` and one
    /// `fdatasync`; an enqueue whose frames someone else wrote meanwhile returns without it.
    async fn append(self: &Arc<Self>, frames: Vec<u8>, count: u64) -> io::Result<()> {
        let (done, mut synced) = oneshot::channel();
        lock(&self.pending).push(Pending {
            frames,
            count,
            done,
        });
        loop {
            tokio::select! {
                biased;
                answer = &mut synced => {
                    return answer.unwrap_or_else(|_| {
                        Err(io::Error::other("the spool's write was interrupted"))
                    });
                }
                leader = self.leader.clone().lock_owned() => {
                    let batch = std::mem::take(&mut *lock(&self.pending));
                    if !batch.is_empty() {
                        // On a blocking thread, whole and under the lock even if this enqueue
                        // is dropped meanwhile.
                        let queue = self.clone();
                        let write = move || {
                            queue.write_batch(batch);
                            drop(leader);
                        };
                        let _ = tokio::task::spawn_blocking(write).await;
                    }
                }
            }
        }
    }

    fn write_batch(&self, batch: Vec<Pending>) {
        let mut writer = lock(&self.writer);
        let (count, len) = batch
            .iter()
            .fold((0, 0), |(c, l), p| (c + p.count, l + p.frames.len() as u64));
        let result = self.write_frames(&mut writer, &batch);
        if result.is_ok() {
            *lock(&self.tail) = Pos {
                seg: writer.seg,
                off: writer.len,
            };
            self.depth.fetch_add(count, Relaxed);
            self.bytes.fetch_add(len, Relaxed);
            self.appended.notify_one();
        }
        drop(writer);
        for pending in batch {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = pending.done.send(answer);
        }
    }

    fn write_frames(&self, writer: &mut Writer, batch: &[Pending]) -> io::Result<()> {
        if writer.len >= self.segment_bytes {
            let seg = writer.seg + 1;
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create_new(true)
                .open(seg_path(&self.dir, seg))?;
            File::open(&self.dir)?.sync_all()?;
            *writer = Writer { file, seg, len: 0 };
        }
        let written = match batch {
            [one] => writer.file.write_all(&one.frames),
            _ => writer
                .file
                .write_all(&batch.iter().fold(Vec::new(), |mut all, p| {
                    all.extend_from_slice(&p.frames);
                    all
                })),
        };
        if let Err(e) = written.and_then(|()| writer.file.sync_data()) {
            // Nothing of a failed batch stays: the next one appends where this one started.
            let _ = writer.file.set_len(writer.len);
            return Err(e);
        }
        writer.len = writer.file.metadata()?.len();
        Ok(())
    }

    /// The head record (and its frame's length), `None` when nothing waits.
    pub(crate) fn head(&self) -> io::Result<Option<(Record, u64)>> {
        let mut read = lock(&self.read);
        loop {
            let tail = *lock(&self.tail);
            if read.pos >= tail {
                self.oldest_ms.store(0, Relaxed);
                return Ok(None);
            }
            let pos = read.pos;
            if read.file.as_ref().is_none_or(|(seg, _)| *seg != pos.seg) {
                read.file = match File::open(seg_path(&self.dir, pos.seg)) {
                    Ok(file) => Some((pos.seg, file)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e),
                };
            }
            let frame = match &read.file {
                Some((_, file)) => read_frame(file, pos.off)?,
                None => Frame::End,
            };
            match frame {
                Frame::Record(record, len) => {
                    self.oldest_ms.store(record.enqueued_ms, Relaxed);
                    return Ok(Some((*record, len)));
                }
                // A later segment exists: this one is done.
                Frame::End if pos.seg < tail.seg => {
                    let next = Pos {
                        seg: pos.seg + 1,
                        off: 0,
                    };
                    self.save_cursor(next)?;
                    read.pos = next;
                    read.file = None;
                    match fs::remove_file(seg_path(&self.dir, pos.seg)) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
                Frame::End | Frame::Torn => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "damaged record in {} at {}",
                            seg_path(&self.dir, pos.seg).display(),
                            pos.off
                        ),
                    ))
                }
            }
        }
    }

    /// The head record (`len` bytes) is done with: the cursor moves past it.
    fn advance(&self, len: u64) -> io::Result<()> {
        let mut read = lock(&self.read);
        let next = Pos {
            seg: read.pos.seg,
            off: read.pos.off + len,
        };
        self.save_cursor(next)?;
        read.pos = next;
        self.depth.fetch_sub(1, Relaxed);
        self.bytes.fetch_sub(len, Relaxed);
        Ok(())
    }

    fn save_cursor(&self, pos: Pos) -> io::Result<()> {
        let mut buf = [0u8; 20];
        buf[..8].copy_from_slice(&pos.seg.to_le_bytes());
        buf[8..16].copy_from_slice(&pos.off.to_le_bytes());
        let crc = crc32fast::hash(&buf[..16]);
        buf[16..].copy_from_slice(&crc.to_le_bytes());
        self.cursor.set_len(20)?;
        self.cursor.write_all_at(&buf, 0)
    }

    /// Waits until records are appended (returns at once if some were since the last wait).
    pub(crate) async fn appended(&self) {
        self.appended.notified().await
    }

    fn oldest_age_seconds(&self) -> u64 {
        match (self.depth.load(Relaxed), self.oldest_ms.load(Relaxed)) {
            (0, _) | (_, 0) => 0,
            (_, oldest) => now_ms().saturating_sub(oldest) / 1000,
        }
    }

    async fn bury(&self, record: &Record, reason: &str) -> io::Result<()> {
        let frame = record.frame();
        let line = json!({
            "id": record.id,
            "reason": reason,
            "target": record.target,
            "enqueued_ms": record.enqueued_ms,
            "dead_ms": now_ms(),
        });
        let mut dead = self.dead.lock().await;
        let start = dead.seg.metadata()?.len();
        if let Err(e) = dead
            .seg
            .write_all(&frame)
            .and_then(|()| dead.seg.sync_data())
        {
            let _ = dead.seg.set_len(start);
            return Err(e);
        }
        dead.log.write_all(format!("{line}\n").as_bytes())?;
        self.dead_count.fetch_add(1, Relaxed);
        self.dead_bytes.fetch_add(frame.len() as u64, Relaxed);
        Ok(())
    }

    async fn replay(self: &Arc<Self>) -> io::Result<usize> {
        let mut dead = self.dead.lock().await;
        let mut frames = Vec::new();
        let (mut count, mut off) = (0, 0);
        let now = now_ms();
        while let Frame::Record(record, len) = read_frame(&dead.seg, off)? {
            frames.extend_from_slice(
                &Record {
                    enqueued_ms: now,
                    ..*record
                }
                .frame(),
            );
            count += 1;
            off += len;
        }
        if count == 0 {
            return Ok(0);
        }
        let new_bytes = frames.len() as u64;
        // The bytes move from the dead letters to the queue (the same records, re-stamped).
        self.used.fetch_add(new_bytes, Relaxed);
        if let Err(e) = self.append(frames, count).await {
            self.used.fetch_sub(new_bytes, Relaxed);
            return Err(e);
        }
        let bytes = self.dead_bytes.load(Relaxed);
        dead.clear(self)?;
        self.used.fetch_sub(bytes, Relaxed);
        Ok(count as usize)
    }

    /// The newest dead letters' lines from `dead.log`, oldest first.
    fn dead_letters(&self) -> Vec<Value> {
        let log = fs::read_to_string(self.dir.join("dead.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(DEAD_LISTED)..]
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Dead {
    /// Empties both files.
    fn clear(&mut self, queue: &Queue) -> io::Result<()> {
        self.seg.set_len(0)?;
        self.seg.sync_data()?;
        self.log.set_len(0)?;
        queue.dead_count.store(0, Relaxed);
        queue.dead_bytes.store(0, Relaxed);
        Ok(())
    }
}

fn read_cursor(file: &File) -> Option<Pos> {
    let mut buf = [0u8; 20];
    file.read_exact_at(&mut buf, 0).ok()?;
    let crc = u32::from_le_bytes(buf[16..].try_into().ok()?);
    (crc32fast::hash(&buf[..16]) == crc).then(|| Pos {
        seg: u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")),
        off: u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes")),
    })
}

#[cfg(test)]
mod tests;
