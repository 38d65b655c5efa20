//! Appending to the log with `O_DIRECT`: the bytes go from one buffer of ours to the disk,
//! not through the page cache.
//!
//! A buffered append copies every byte into a page-cache page the kernel has just allocated
//! (and, in a virtual machine, one the host may have to back first), and the kernel's flusher
//! then writes it out again. At the full load that was about a fifth of the server's CPU
//! (`docs/benchmarks.md`); written directly, the same bytes cost well under half as much,
//! and an `fdatasync` has only the device's cache left to flush.
//!
//! Direct writes must start and end on a block boundary and come from an aligned buffer. The
//! log's records do not, so each append rewrites the block the log ends in: the bytes of it
//! already written (kept here, the *tail*), then the record, then zeros to the next
//! boundary. The file's layout is unchanged (a record, then the next one; zeros after the
//! last), so readers, recovery and older versions see no difference. The zeros the log writes
//! ahead of its records go the same way, from one aligned static buffer. (Rewriting the block
//! that holds the last acked records is no new risk: buffered, the kernel writes that page
//! back whole too. A device that tears a 4 KiB write at power loss could damage them either
//! way; `recover.rs` then finds the damaged record by its checksum.)
//!
//! Replay reads the segments through the page cache as before; a direct write drops the
//! cached pages it overwrites, so what it reads is what was written.
//!
//! A file system that refuses `O_DIRECT` (or an alignment of [`BLOCK`]) is written buffered,
//! as before: the log falls back when a direct open fails or a direct write is refused
//! (`EINVAL`; a full disk is not a refusal).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The alignment of direct writes: offsets, lengths and buffer addresses. 4 KiB satisfies
/// disks with 512-byte sectors as well as 4 KiB ones.
pub(super) const BLOCK: u64 = 4096;

/// Zeros written ahead of the records at a time (`log.rs`).
pub(super) const ZEROS_LEN: usize = 1 << 20;

/// Aligned zeros for writing ahead, shared by every segment (direct or not).
#[repr(C, align(4096))]
pub(super) struct Zeros(pub [u8; ZEROS_LEN]);
pub(super) static ZEROS: Zeros = Zeros([0; ZEROS_LEN]);

/// `at` rounded up to a block boundary.
pub(super) fn round_up(at: u64) -> u64 {
    at.div_ceil(BLOCK) * BLOCK
}

/// Whether a direct write failed because the file system does not take it (rather than,
/// say, a full disk): the log then goes on buffered.
pub(super) fn refused(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// A staging buffer above this size is given back once this many records in a row needed
/// less than a quarter of it (not at the first small one: reallocating a large buffer often
/// would cost what writing directly saves).
const KEEP_BYTES: usize = 1 << 20;
const SHRINK_AFTER: u32 = 256;

/// The direct handle of the segment being appended to.
pub(super) struct Direct {
    file: File,
    /// Bytes of the block the log ends in, from the block's start to the log's end.
    tail: Vec<u8>,
    /// Where a block's bytes are put together; its aligned part is used.
    buf: Stage,
    /// Tests: the next append is refused as a file system without `O_DIRECT` would.
    #[cfg(test)]
    pub(super) refuse: bool,
}

impl Direct {
    /// Opens `path` for direct writes; `tail` is what is written of the block the log ends
    /// in. `None` if the file system does not take `O_DIRECT`.
    pub(super) fn open(path: &Path, tail: &[u8]) -> Option<Direct> {
        debug_assert!((tail.len() as u64) < BLOCK);
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| tracing::debug!(error = %e, "The log is written buffered: O_DIRECT is refused."))
            .ok()?;
        Some(Direct {
            file,
            tail: tail.to_vec(),
            buf: Stage::default(),
            #[cfg(test)]
            refuse: false,
        })
    }

    /// Writes `record` at `len` (where the log ends) with the tail in front of it and zeros
    /// after it to the next block boundary; afterwards the log's last block is the new tail.
    /// On failure the tail is unchanged, and so valid for the same `len`.
    pub(super) fn append(&mut self, len: u64, record: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if self.refuse {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let start = len - len % BLOCK;
        debug_assert_eq!(self.tail.len() as u64, len - start);
        let used = self.tail.len() + record.len();
        let padded = round_up(used as u64) as usize;
        let block = self.buf.get(padded)?;
        block[..self.tail.len()].copy_from_slice(&self.tail);
        block[self.tail.len()..used].copy_from_slice(record);
        block[used..].fill(0);
        self.file.write_all_at(block, start)?;
        let last = used - used % BLOCK as usize;
        self.tail.clear();
        self.tail.extend_from_slice(&block[last..used]);
        Ok(())
    }

    /// Writes zeros from `from` to `to`, both block boundaries, at most [`ZEROS_LEN`] apart.
    pub(super) fn zeros(&self, from: u64, to: u64) -> std::io::Result<()> {
        debug_assert!(from % BLOCK == 0 && to % BLOCK == 0 && to - from <= ZEROS_LEN as u64);
        self.file
            .write_all_at(&ZEROS.0[..(to - from) as usize], from)
    }

    /// The log was cut back to `len`: reads the block it now ends in back from `path`.
    pub(super) fn reload(&mut self, path: &Path, len: u64) -> std::io::Result<()> {
        let start = len - len % BLOCK;
        let mut tail = vec![0u8; (len - start) as usize];
        File::open(path)?.read_exact_at(&mut tail, start)?;
        self.tail = tail;
        Ok(())
    }
}

/// A buffer with room for an aligned block of bytes.
#[derive(Default)]
struct Stage {
    buf: Vec<u8>,
    /// Records in a row that needed less than a quarter of a large buffer.
    small: u32,
}

impl Stage {
    /// `n` aligned bytes, reallocating if the buffer is too small (or long far too large).
    fn get(&mut self, n: usize) -> std::io::Result<&mut [u8]> {
        let want = n + BLOCK as usize;
        let large = self.buf.len() > KEEP_BYTES && self.buf.len() > 4 * want;
        self.small = if large { self.small + 1 } else { 0 };
        if self.buf.len() < want || self.small > SHRINK_AFTER {
            self.buf = vec![0; want.next_multiple_of(64 << 10)];
            self.small = 0;
        }
        let off = self.buf.as_ptr().align_offset(BLOCK as usize);
        self.buf
            .get_mut(off..off + n)
            .ok_or_else(|| std::io::Error::other("no aligned buffer for a direct write"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_blocks_are_aligned_and_sized() {
        let mut stage = Stage::default();
        for n in [4096, 8192, 3 << 20, 4096, 12288] {
            let b = stage.get(n).unwrap();
            assert_eq!(b.len(), n);
            assert_eq!(b.as_ptr() as usize % BLOCK as usize, 0);
        }
        // The 3 MiB buffer is kept through a few small blocks, and given back after many.
        assert!(stage.buf.len() > 3 << 20);
        for _ in 0..SHRINK_AFTER {
            stage.get(4096).unwrap();
        }
        assert!(stage.buf.len() < 1 << 20, "{}", stage.buf.len());
        assert_eq!(std::ptr::addr_of!(ZEROS) as usize % BLOCK as usize, 0);
        assert_eq!((round_up(0), round_up(1), round_up(4096)), (0, 4096, 4096));
    }
}
