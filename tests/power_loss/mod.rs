//! A power cut, after the fact. The server runs with `shim.c` preloaded, which journals every
//! write, truncation, creation, removal and sync under its data directory. After a SIGKILL,
//! [`cut_power`] turns the files into a state a power cut at that moment could have left:
//! everything synced stays; of what was not, each write is lost, kept or torn (a prefix of
//! it kept, in 512-byte sectors), each creation or removal not made durable by a sync of its
//! directory is kept or undone, and each truncation kept or lost, independently and in any
//! combination, as a disk with a volatile write cache may do.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Builds the shim with the system's C compiler, into `dir`.
pub fn build_shim(dir: &Path) -> PathBuf {
    let out = dir.join("powerloss.so");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/power_loss/shim.c");
    let status = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .args(["-ldl", "-lpthread"])
        .status()
        .expect("a C compiler (cc) builds the power-loss shim");
    assert!(status.success(), "building {}", src.display());
    out
}

/// One journal record (see `shim.c`).
struct Record {
    kind: u8,
    path: PathBuf,
    a: u64,
    b: u64,
    data: Vec<u8>,
}

/// The journal's records. A record cut short by the kill is left out: the shim writes it
/// after the operation, so the operation stands as if the disk had kept it (a write, a
/// creation), or counts as not done (a sync, whose ack the kill came before).
fn parse(bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let take = |rest: &mut &[u8], n: usize| {
        let (head, tail) = rest.split_at_checked(n)?;
        *rest = tail;
        Some(head.to_vec())
    };
    let u64_of = |b: Vec<u8>| u64::from_le_bytes(b.try_into().unwrap());
    while !rest.is_empty() {
        let Some(record) = (|| {
            let kind = take(&mut rest, 1)?[0];
            let plen = u32::from_le_bytes(take(&mut rest, 4)?.try_into().unwrap()) as usize;
            let path = PathBuf::from(String::from_utf8(take(&mut rest, plen)?).unwrap());
            let (a, b) = (u64_of(take(&mut rest, 8)?), u64_of(take(&mut rest, 8)?));
            let dlen = u64_of(take(&mut rest, 8)?) as usize;
            let data = take(&mut rest, dlen)?;
            Some(Record {
                kind,
                path,
                a,
                b,
                data,
            })
        })() else {
            break;
        };
        out.push(record);
    }
    out
}

/// What happened to the journal's unsynced operations.
#[derive(Debug, Default)]
pub struct Cut {
    /// Operations recorded since the last cut, and how many of them were not yet synced.
    pub recorded: usize,
    pub unsynced: usize,
    pub lost: usize,
    pub torn: usize,
    /// Of the lost: file removals, whose files came back.
    pub unremoved: usize,
}

/// Applies a power cut to the files the journal at `journal` recorded, then removes the
/// journal and what it kept. With `lose_all`, everything unsynced is lost; otherwise each
/// unsynced operation is lost, kept or (a write) torn, choosing with `rand(n)` (below n).
pub fn cut_power(journal: &Path, lose_all: bool, rand: &mut dyn FnMut(u64) -> u64) -> Cut {
    let Ok(bytes) = std::fs::read(journal) else {
        return Cut::default(); // nothing was written since the last cut
    };
    let records = parse(&bytes);
    // Records before a path's (a directory's) boundary are durable.
    let mut synced: HashMap<&Path, u64> = HashMap::new();
    for r in &records {
        if matches!(r.kind, b'S' | b'D') {
            let e = synced.entry(r.path.as_path()).or_default();
            *e = (*e).max(r.a);
        }
    }
    let boundary = |p: &Path| synced.get(p).copied().unwrap_or(0);
    let pending: Vec<(usize, &Record)> = records
        .iter()
        .enumerate()
        .filter(|(i, r)| match r.kind {
            b'W' | b'T' => *i as u64 >= boundary(&r.path),
            b'C' | b'U' => *i as u64 >= boundary(r.path.parent().unwrap()),
            _ => false,
        })
        .collect();
    let mut cut = Cut {
        recorded: records.len(),
        unsynced: pending.len(),
        ..Cut::default()
    };
    let file = |p: &Path| OpenOptions::new().write(true).open(p).ok();
    // Back to the last synced state, newest first.
    for (_, r) in pending.iter().rev() {
        match r.kind {
            b'W' => {
                if let Some(f) = file(&r.path) {
                    let old_len = u64::from_le_bytes(r.data[..8].try_into().unwrap()) as usize;
                    f.write_all_at(&r.data[8..8 + old_len], r.a).unwrap();
                    if f.metadata().unwrap().len() > r.b {
                        f.set_len(r.b).unwrap();
                    }
                }
            }
            b'T' => {
                if let Some(f) = file(&r.path) {
                    f.set_len(r.b).unwrap();
                    f.write_all_at(&r.data, r.a).unwrap();
                }
            }
            b'C' if r.a == 1 => {
                let _ = std::fs::remove_dir_all(&r.path);
            }
            b'C' => {
                let _ = std::fs::remove_file(&r.path);
            }
            b'U' => {
                let kept = PathBuf::from(String::from_utf8(r.data.clone()).unwrap());
                std::fs::hard_link(&kept, &r.path).unwrap();
            }
            _ => unreachable!(),
        }
    }
    // Then forward: what the disk happened to keep of the rest.
    let mut absent: Vec<&Path> = Vec::new();
    for (_, r) in &pending {
        if absent.contains(&r.path.as_path()) && r.kind != b'C' {
            continue;
        }
        let keep = if lose_all { 0 } else { rand(3) };
        if keep == 0 {
            cut.lost += 1;
            cut.unremoved += usize::from(r.kind == b'U');
            if r.kind == b'C' {
                absent.push(&r.path);
            }
            continue;
        }
        match r.kind {
            b'W' => {
                let old_len = u64::from_le_bytes(r.data[..8].try_into().unwrap()) as usize;
                let new = &r.data[8 + old_len..];
                let mut n = new.len();
                if keep == 2 && n > 512 {
                    n = rand(n as u64 / 512) as usize * 512;
                    cut.torn += 1;
                }
                if let Some(f) = file(&r.path) {
                    f.write_all_at(&new[..n], r.a).unwrap();
                }
            }
            b'T' => {
                if let Some(f) = file(&r.path) {
                    f.set_len(r.a).unwrap();
                }
            }
            // A directory (a = 1): what was created in it is lost with it.
            b'C' if r.a == 1 => {
                absent.retain(|p| *p != r.path.as_path());
                let _ = std::fs::create_dir(&r.path);
            }
            b'C' => {
                absent.retain(|p| *p != r.path.as_path());
                let _ = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&r.path);
            }
            b'U' => {
                let _ = std::fs::remove_file(&r.path);
            }
            _ => unreachable!(),
        }
    }
    for r in records.iter().filter(|r| r.kind == b'U') {
        let _ = std::fs::remove_file(String::from_utf8(r.data.clone()).unwrap());
    }
    std::fs::remove_file(journal).unwrap();
    cut
}

#[test]
fn a_record_cut_short_by_the_kill_is_left_out() {
    let rec = |kind: u8, path: &str, data: &[u8]| {
        let mut b = vec![kind];
        b.extend((path.len() as u32).to_le_bytes());
        b.extend(path.as_bytes());
        b.extend(7u64.to_le_bytes());
        b.extend(9u64.to_le_bytes());
        b.extend((data.len() as u64).to_le_bytes());
        b.extend(data);
        b
    };
    let mut journal = rec(b'S', "/d/a", b"");
    journal.extend(rec(b'W', "/d/b", b"0123456789"));
    let whole = parse(&journal);
    assert_eq!(whole.len(), 2);
    assert_eq!((whole[1].kind, whole[1].a, whole[1].b), (b'W', 7, 9));
    assert_eq!(whole[1].data, b"0123456789");
    for cut in 1..journal.len() - rec(b'S', "/d/a", b"").len() {
        let parsed = parse(&journal[..journal.len() - cut]);
        assert_eq!(parsed.len(), 1, "cut {cut}");
        assert_eq!(parsed[0].path, Path::new("/d/a"));
    }
}
