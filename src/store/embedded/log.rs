//! The write-ahead log: segment files that each commit group is appended to, with one write
//! and one `fdatasync`, before the group is acknowledged.
//!
//! A group's chunk bytes are written here once, sequentially, and stay here (made durable by
//! `Inner::sync_to`, which one `fdatasync` serves for every group written before it): redb keeps only
//! small index entries (segment, offset, length), in runs (`runs.rs`), and the summaries;
//! a checkpoint makes it durable now and then (`recover.rs`), and after a crash the records
//! after the last checkpoint are applied again from the log.
//!
//! Layout of `DIR/log/{id:020}.seg`: the 8-byte magic `SPOORLG1`, then records, each
//! `len: u32 LE, crc32(payload): u32 LE, payload[len]`. A record never spans two segments;
//! a segment is closed once it passes `[embedded] segment_bytes` (64 MiB). The payload's own format is in
//! `redo.rs`.
//!
//! The segment being appended to is written with zeros ahead of its records, a mebibyte at
//! a time ([`PREPARE`]): an `fdatasync` after a record that lands on blocks already written
//! has only the data to flush, not the file's new size and blocks to journal first (on
//! ext4 this is about a quarter less CPU and a third less time per sync). A record's frame is
//! never all zeros (no payload is empty), so readers know where the records end: at the
//! first zero length. The zeros are cut off when the segment is closed, or at the next start.
//! A record of [`LARGE`] or more (a group at full load) is not followed by zeros: there the
//! file's growth is journalled once for a lot of data, while the zeros would double the
//! bytes the device writes (measured: 5 % more events a second at full load without them).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::direct::{self, Direct, ZEROS};
use crate::error::StoreError;

pub(super) const MAGIC: &[u8; 8] = b"SPOORLG1";
/// Where the first record of a segment starts.
pub(super) const HEADER: u64 = MAGIC.len() as u64;
/// No record is longer: a corrupt length cannot make recovery allocate wildly (a group is
/// bounded far below this by the pipeline's memory budget).
pub(super) const MAX_RECORD: u32 = 1 << 30;
/// Bytes of framing before each payload.
pub(super) const FRAME: u64 = 8;
/// Zeros written ahead of the records at a time.
const PREPARE: u64 = direct::ZEROS_LEN as u64;
/// A record at least this long is not followed by zeros written ahead.
const LARGE: u64 = PREPARE / 4;

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

pub(super) fn dir_of(data: &Path) -> PathBuf {
    data.join("log")
}

pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The ids of the segments in `dir`, ascending.
pub(super) fn segment_ids(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut ids = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(io("listing", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io("listing", dir, e))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        ids.push(id);
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The segments in `dir` with their sizes in bytes, ascending (one that vanished meanwhile
/// is left out).
pub(super) fn sizes(dir: &Path) -> Result<Vec<(u64, u64)>, StoreError> {
    Ok(segment_ids(dir)?
        .into_iter()
        .filter_map(|id| {
            let len = std::fs::metadata(segment_path(dir, id)).ok()?.len();
            Some((id, len))
        })
        .collect())
}

/// Makes a directory's entries (a new or removed segment, the store's own names) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing", dir, e))
}

/// The segment being appended to.
pub(super) struct Log {
    dir: PathBuf,
    id: u64,
    /// Shared with the thread that syncs it, so no append waits for an `fdatasync`.
    file: std::sync::Arc<File>,
    len: u64,
    /// The file is written (records, then zeros) up to here.
    prepared: u64,
    /// Where a segment is closed.
    limit: u64,
    /// How appends are written: directly (`direct.rs`), or buffered if the file system
    /// refused that.
    direct: Option<Direct>,
}

impl Log {
    /// Begins segment `id` (which must not exist) in `dir`.
    pub(super) fn begin(dir: &Path, id: u64, limit: u64) -> Result<Log, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
        let path = segment_path(dir, id);
        let mut file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io("creating", &path, e))?;
        file.write_all(MAGIC)
            .and_then(|()| file.sync_data())
            .map_err(|e| io("writing", &path, e))?;
        sync_dir(dir)?;
        Ok(Log {
            dir: dir.to_owned(),
            id,
            file: std::sync::Arc::new(file),
            len: HEADER,
            prepared: HEADER,
            limit,
            direct: Direct::open(&path, MAGIC),
        })
    }

    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Whether appends are written with `O_DIRECT`.
    pub(super) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Where the next record goes: (segment, offset).
    pub(super) fn end(&self) -> (u64, u64) {
        (self.id, self.len)
    }

    pub(super) fn file(&self) -> std::sync::Arc<File> {
        self.file.clone()
    }

    /// Makes everything appended to this segment durable.
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|e| io("syncing", &segment_path(&self.dir, self.id), e))
    }

    /// Where a record of `payload` bytes will start: in this segment, or at the start of a
    /// new one if this one is full.
    pub(super) fn place(&mut self, payload: usize) -> Result<(u64, u64), StoreError> {
        if self.len > HEADER && self.len + FRAME + payload as u64 > self.limit {
            // A closed segment ends at its last whole record (no leftover of a failed write
            // can sit in front of later segments), and is durable whole: syncs only ever
            // look at the current one.
            self.file
                .set_len(self.len)
                .map_err(|e| io("closing", &segment_path(&self.dir, self.id), e))?;
            self.sync()?;
            *self = Log::begin(&self.dir, self.id + 1, self.limit)?;
        }
        Ok((self.id, self.len))
    }

    /// Whether a record of `len` bytes (framing included) goes in with one write of its own:
    /// no segment to close and sync first, no zeros to write ahead after it.
    pub(super) fn append_is_quick(&self, len: usize) -> bool {
        let len = len as u64;
        let end = self.len + len;
        let closes = self.len > HEADER && end > self.limit;
        let prepares = len < LARGE && end + PREPARE / 2 > self.prepared && end < self.limit;
        !closes && !prepares
    }

    /// Writes `record` (framing included, see [`frame`]) at the place [`Log::place`] gave; not
    /// yet durable. On failure the segment is cut back to where it was, so a partial record
    /// never stays in front of later ones.
    pub(super) fn append(&mut self, record: &[u8]) -> Result<(), StoreError> {
        debug_assert!(record.len() as u64 > FRAME, "no record is empty");
        let written = match &mut self.direct {
            Some(d) => match d.append(self.len, record) {
                Err(e) if direct::refused(&e) => {
                    tracing::warn!(error = %e, segment = self.id, "A direct write to the log was refused; appending buffered from here.");
                    self.direct = None;
                    self.file.write_all_at(record, self.len)
                }
                r => r,
            },
            None => self.file.write_all_at(record, self.len),
        };
        match written {
            Ok(()) => {
                self.len += record.len() as u64;
                if (record.len() as u64) < LARGE {
                    self.prepare();
                }
                Ok(())
            }
            Err(e) => {
                self.cut();
                Err(io("appending to", &segment_path(&self.dir, self.id), e))
            }
        }
    }

    /// Writes the next mebibyte of zeros once the records come near the end of what is
    /// written (not past the segment's limit); called after a record shorter than [`LARGE`].
    /// Only an optimisation: if the zeros cannot be written (the disk is full), records are
    /// appended to the file's end as they would be anyway.
    fn prepare(&mut self) {
        if self.len + PREPARE / 2 <= self.prepared || self.len >= self.limit {
            return;
        }
        let from = self.prepared.max(self.len);
        let to = (self.len + PREPARE).min(self.limit);
        if to <= from {
            return;
        }
        // `to - from` is at most PREPARE: one write. A direct one from the block after the
        // log's end (an append wrote zeros to there).
        let written = match &self.direct {
            Some(d) => {
                let (from, to) = (direct::round_up(from), direct::round_up(to));
                d.zeros(from, to).map(|()| to)
            }
            None => self
                .file
                .write_all_at(&ZEROS.0[..(to - from) as usize], from)
                .map(|()| to),
        };
        match written {
            Ok(to) => self.prepared = to,
            Err(e) => {
                tracing::debug!(error = %e, segment = self.id, "Could not write zeros ahead of the log's records.");
                self.cut();
            }
        }
    }

    /// Takes back the record appended at `start` (its transaction failed).
    pub(super) fn undo(&mut self, start: u64) {
        self.len = start.min(self.len);
        self.cut();
        let path = segment_path(&self.dir, self.id);
        if let Some(Err(e)) = self.direct.as_mut().map(|d| d.reload(&path, self.len)) {
            tracing::warn!(error = %e, segment = self.id, "Could not read the log's last block back; appending buffered from here.");
            self.direct = None;
        }
    }

    /// Cuts the segment back to its last whole record (after a failed append, or a record
    /// whose transaction failed).
    pub(super) fn cut(&mut self) {
        if let Err(e) = self.file.set_len(self.len) {
            tracing::warn!(error = %e, segment = self.id, "Could not cut a failed record off the log; it is skipped at the next start.");
        }
        self.prepared = self.len;
    }
}

/// Fills in the framing of a record built as `[0; 8]` followed by its payload.
pub(super) fn frame(record: &mut [u8]) {
    let payload = &record[FRAME as usize..];
    let crc = crc32fast::hash(payload);
    let len = payload.len() as u32;
    record[..4].copy_from_slice(&len.to_le_bytes());
    record[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// How reading a segment ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum End {
    /// At the end of the file, after a whole record.
    Clean,
    /// A partial or damaged record starts here (a write cut short by a crash).
    Torn(u64),
    /// The zeros written ahead of the records start here.
    Unwritten(u64),
}

/// Reads a segment's records in order, from `from`.
pub(super) struct Reader {
    file: BufReader<File>,
    pos: u64,
    size: u64,
}

impl Reader {
    pub(super) fn open(dir: &Path, id: u64, from: u64) -> Result<Reader, StoreError> {
        let path = segment_path(dir, id);
        let file = File::open(&path).map_err(|e| io("opening", &path, e))?;
        let size = file.metadata().map_err(|e| io("reading", &path, e))?.len();
        let mut magic = [0u8; 8];
        let ok = file.read_exact_at(&mut magic, 0).is_ok() && &magic == MAGIC;
        if !ok {
            return Err(StoreError::Corrupt(format!(
                "{} is not a spoor log segment",
                path.display()
            )));
        }
        let from = from.max(HEADER);
        let mut file = BufReader::with_capacity(1 << 20, file);
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(from))
            .map_err(|e| io("reading", &path, e))?;
        Ok(Reader {
            file,
            pos: from,
            size,
        })
    }

    /// The next record: the file offset of its payload and the payload; or how the segment
    /// ended.
    pub(super) fn next(&mut self) -> Result<(u64, Vec<u8>), End> {
        if self.pos >= self.size {
            return Err(End::Clean);
        }
        let torn = End::Torn(self.pos);
        let mut head = [0u8; 8];
        if self.file.read_exact(&mut head).is_err() {
            return Err(torn);
        }
        let len = u32::from_le_bytes(head[..4].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap_or_default());
        if len == 0 {
            // Zeros to the end are what was written ahead; anything else after them is a
            // record whose start did not reach the disk.
            return Err(if self.zeros_to_end() {
                End::Unwritten(self.pos)
            } else {
                torn
            });
        }
        if len > MAX_RECORD || self.pos + FRAME + u64::from(len) > self.size {
            return Err(torn);
        }
        let mut payload = vec![0u8; len as usize];
        if self.file.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            return Err(torn);
        }
        let at = self.pos + FRAME;
        self.pos = at + u64::from(len);
        Ok((at, payload))
    }

    /// Whether everything after the frame at `pos` is zeros.
    fn zeros_to_end(&mut self) -> bool {
        let mut block = vec![0u8; 64 << 10];
        let mut left = self.size.saturating_sub(self.pos + FRAME);
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            if self.file.read_exact(&mut block[..n]).is_err() || block[..n].iter().any(|&b| b != 0)
            {
                return false;
            }
            left -= n as u64;
        }
        true
    }
}

/// Reads chunk bytes at (segment, offset, length), keeping the segments it opened.
#[derive(Default)]
pub(super) struct Blobs {
    files: HashMap<u64, File>,
}

impl Blobs {
    pub(super) fn read(
        &mut self,
        dir: &Path,
        (id, at, len): (u64, u64, u32),
    ) -> Result<Vec<u8>, StoreError> {
        let path = segment_path(dir, id);
        let file = match self.files.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(File::open(&path).map_err(|e| io("opening", &path, e))?)
            }
        };
        let mut out = vec![0u8; len as usize];
        file.read_exact_at(&mut out, at)
            .map_err(|e| io("reading", &path, e))?;
        Ok(out)
    }
}

/// Removes segment `id` (all of whose chunks are gone) for good.
pub(super) fn remove(dir: &Path, id: u64) -> Result<(), StoreError> {
    let path = segment_path(dir, id);
    std::fs::remove_file(&path).map_err(|e| io("removing", &path, e))?;
    sync_dir(dir)
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
