//! What one group's write and `fdatasync` cost the writing process, by how the log is written
//! (`docs/benchmarks.md`, "The log past the page cache"):
//!
//! - `buffered`: into a file of zeros written (directly) and synced beforehand, so each write
//!   lands in new page-cache pages, as spoor's log did until 2026-12-04;
//! - `direct`: the same file, with `O_DIRECT`, the last partial block rewritten each time, as
//!   spoor's log does now;
//! - `grow`: buffered, each write growing the file (no zeros ahead).
//!
//! `cargo run --release --example log_write -- DIR [group_bytes] [groups]` prints the CPU
//! time of the process per group (user + system, from `/proc/self/stat`) and the wall time.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

const BLOCK: usize = 4096;

/// CPU seconds (user + system) of this process so far.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// `n` bytes of `buf` starting at an aligned address.
fn aligned(buf: &mut [u8], n: usize) -> &mut [u8] {
    let off = buf.as_ptr().align_offset(BLOCK);
    &mut buf[off..off + n]
}

fn direct(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// A file of `len` zeros written past the page cache and synced.
fn zeros(path: &Path, len: usize) -> std::io::Result<()> {
    File::create(path)?;
    let f = direct(path)?;
    let mut buf = vec![0u8; (1 << 20) + BLOCK];
    let z = aligned(&mut buf, 1 << 20);
    for at in (0..len).step_by(1 << 20) {
        f.write_all_at(z, at as u64)?;
    }
    f.sync_all()
}

fn run(dir: &Path, mode: &str, size: usize, groups: usize) -> std::io::Result<()> {
    let path = dir.join(format!("log-write-{mode}"));
    let total = size * groups + (2 << 20);
    let record = vec![7u8; size];
    let mut stage = vec![0u8; size + 3 * BLOCK];
    let file = match mode {
        "grow" => File::create(&path)?,
        _ => {
            zeros(&path, total)?;
            match mode {
                "direct" => direct(&path)?,
                _ => OpenOptions::new().write(true).open(&path)?,
            }
        }
    };
    let mut tail: Vec<u8> = Vec::new();
    let (cpu0, t0) = (cpu_s(), Instant::now());
    let mut len = 0usize;
    for _ in 0..groups {
        if mode == "direct" {
            let start = len - len % BLOCK;
            let used = tail.len() + size;
            let padded = used.div_ceil(BLOCK) * BLOCK;
            let block = aligned(&mut stage, padded);
            block[..tail.len()].copy_from_slice(&tail);
            block[tail.len()..used].copy_from_slice(&record);
            block[used..].fill(0);
            file.write_all_at(block, start as u64)?;
            tail = block[used - used % BLOCK..used].to_vec();
        } else {
            file.write_all_at(&record, len as u64)?;
        }
        file.sync_data()?;
        len += size;
    }
    let (cpu, wall) = (cpu_s() - cpu0, t0.elapsed().as_secs_f64());
    println!(
        "{mode:<8} {size:>8} B/group  {:>7.1} µs CPU  {:>7.1} µs wall per group",
        cpu / groups as f64 * 1e6,
        wall / groups as f64 * 1e6
    );
    std::fs::remove_file(&path)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp".into()));
    let size = args.next().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let groups = args.next().and_then(|s| s.parse().ok()).unwrap_or(3_000);
    for mode in ["buffered", "direct", "grow"] {
        run(&dir, mode, size, groups)?;
    }
    Ok(())
}
