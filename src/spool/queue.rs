//! One route's queue on disk: segments, cursor, dead letters (see the parent module).

use super::files::{
    open_cursor, open_rw, recover_segments, scan, seg_path, segments_or_first, Pos,
};
use super::record::{read_frame, Frame, Record};
use super::{lock, now_ms, DEAD_LISTED};
use serde_json::{json, Value};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Notify};

/// A place in a queue: segment number and byte offset.
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
pub(super) struct Dead {
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
    pub(super) depth: AtomicU64,
    pub(super) bytes: AtomicU64,
    /// The head record's `enqueued_ms` once the delivery loop read it (0: none).
    oldest_ms: AtomicU64,
    pub(super) dead_count: AtomicU64,
    pub(super) dead_bytes: AtomicU64,
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
    pub(super) dead: tokio::sync::Mutex<Dead>,
    /// The spool's byte count (the dead letters' part changes here).
    used: Arc<AtomicU64>,
}

impl Queue {
    /// Opens (creating, or recovering) the queue in `dir`.
    pub(super) fn open(
        route: &str,
        dir: PathBuf,
        segment_bytes: u64,
        used: Arc<AtomicU64>,
    ) -> io::Result<Queue> {
        fs::create_dir_all(&dir)?;
        let segs = segments_or_first(&dir)?;
        let last = segs[segs.len() - 1];
        let (cursor, start) = open_cursor(&dir, &segs)?;
        let (depth, bytes) = recover_segments(&dir, route, &segs, start)?;
        let last_path = seg_path(&dir, last);
        let file = open_rw(&last_path)?;
        let len = file.metadata()?.len();
        let dead = Dead {
            seg: open_rw(&dir.join("dead.seg"))?,
            log: open_rw(&dir.join("dead.log"))?,
        };
        let (dead_count, dead_bytes) = scan(&dead.seg, &dir.join("dead.seg"), route, 0)?;
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
            dead: tokio::sync::Mutex::new(dead),
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
    pub(super) async fn append(self: &Arc<Self>, frames: Vec<u8>, count: u64) -> io::Result<()> {
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
    pub(super) fn advance(&self, len: u64) -> io::Result<()> {
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

    pub(super) fn oldest_age_seconds(&self) -> u64 {
        match (self.depth.load(Relaxed), self.oldest_ms.load(Relaxed)) {
            (0, _) | (_, 0) => 0,
            (_, oldest) => now_ms().saturating_sub(oldest) / 1000,
        }
    }

    pub(super) async fn bury(&self, record: &Record, reason: &str) -> io::Result<()> {
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

    pub(super) async fn replay(self: &Arc<Self>) -> io::Result<usize> {
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
    pub(super) fn dead_letters(&self) -> Vec<Value> {
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
    pub(super) fn clear(&mut self, queue: &Queue) -> io::Result<()> {
        self.seg.set_len(0)?;
        self.seg.sync_data()?;
        self.log.set_len(0)?;
        queue.dead_count.store(0, Relaxed);
        queue.dead_bytes.store(0, Relaxed);
        Ok(())
    }
}
