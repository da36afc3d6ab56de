//! The queue's files: segment names, the cursor, and reading them back at start (a torn end cut
//! off).

use super::record::{read_frame, Frame};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pos {
    pub(super) seg: u64,
    pub(super) off: u64,
}

pub(super) fn seg_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:012}.seg"))
}

/// The segment numbers in `dir`, sorted.
pub(super) fn segments(dir: &Path) -> io::Result<Vec<u64>> {
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

pub(super) fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

/// The `cursor` file and where delivery starts: its position if it is intact and names a
/// segment there is, else the first segment's start.
pub(super) fn open_cursor(dir: &Path, segs: &[u64]) -> io::Result<(File, Pos)> {
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
    Ok((cursor, start))
}

/// The segment numbers in `dir`, a first (empty) one created if there is none.
pub(super) fn segments_or_first(dir: &Path) -> io::Result<Vec<u64>> {
    let segs = segments(dir)?;
    if !segs.is_empty() {
        return Ok(segs);
    }
    File::create(seg_path(dir, 1))?;
    File::open(dir)?.sync_all()?;
    Ok(vec![1])
}

/// Counts the intact frames of `file` from `off`, cutting off a torn end (logged): (count,
/// bytes).
pub(super) fn scan(file: &File, path: &Path, route: &str, mut off: u64) -> io::Result<(u64, u64)> {
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

/// Deletes the segments wholly behind `start` (a crash came between the cursor's move and the
/// delete) and counts the records from `start` on, cutting off a torn end: (records, bytes).
pub(super) fn recover_segments(
    dir: &Path,
    route: &str,
    segs: &[u64],
    start: Pos,
) -> io::Result<(u64, u64)> {
    let (mut depth, mut bytes) = (0, 0);
    for &seg in segs {
        let path = seg_path(dir, seg);
        if seg < start.seg {
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
    Ok((depth, bytes))
}

pub(super) fn read_cursor(file: &File) -> Option<Pos> {
    let mut buf = [0u8; 20];
    file.read_exact_at(&mut buf, 0).ok()?;
    let crc = u32::from_le_bytes(buf[16..].try_into().ok()?);
    (crc32fast::hash(&buf[..16]) == crc).then(|| Pos {
        seg: u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")),
        off: u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes")),
    })
}
