//! The log's tests: records read back, torn tails found, direct and buffered appends alike,
//! segments closed and zeros written ahead only after small records.

use super::*;

fn record(payload: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; 8];
    r.extend_from_slice(payload);
    frame(&mut r);
    r
}

#[test]
fn records_read_back_in_order_and_a_torn_tail_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = Log::begin(tmp.path(), 1, 1 << 20).unwrap();
    let mut places = Vec::new();
    for p in [&b"one"[..], b"2", b"three"] {
        let r = record(p);
        places.push(log.place(p.len()).unwrap());
        log.append(&r).unwrap();
    }
    assert_eq!(places, vec![(1, 8), (1, 19), (1, 28)]);
    // Zeros were written ahead of the records; reading stops where they start.
    let path = segment_path(tmp.path(), 1);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
    let mut rd = Reader::open(tmp.path(), 1, 0).unwrap();
    assert_eq!(rd.next().unwrap(), (16, b"one".to_vec()));
    assert_eq!(rd.next().unwrap(), (27, b"2".to_vec()));
    assert_eq!(rd.next().unwrap(), (36, b"three".to_vec()));
    assert_eq!(rd.next().unwrap_err(), End::Unwritten(41));
    // A crash in the middle of a fourth record.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&record(b"four")[..9], 41).unwrap();
    let mut rd = Reader::open(tmp.path(), 1, 28).unwrap();
    assert_eq!(rd.next().unwrap(), (36, b"three".to_vec()));
    assert_eq!(rd.next().unwrap_err(), End::Torn(41));
    // Its frame did not reach the disk, but later bytes of it did.
    f.write_all_at(&[0; 8], 41).unwrap();
    let mut rd = Reader::open(tmp.path(), 1, 41).unwrap();
    assert_eq!(rd.next().unwrap_err(), End::Torn(41));
    f.set_len(41).unwrap();
    // A damaged byte is found by the checksum.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[17] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let mut rd = Reader::open(tmp.path(), 1, 0).unwrap();
    assert_eq!(rd.next().unwrap_err(), End::Torn(8));
    let mut blobs = Blobs::default();
    assert_eq!(blobs.read(tmp.path(), (1, 36, 5)).unwrap(), b"three");
    assert_eq!(segment_ids(tmp.path()).unwrap(), vec![1]);
}

#[test]
fn direct_and_buffered_appends_write_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut direct = Log::begin(tmp.path(), 1, 8 << 20).unwrap();
    let mut buffered = Log::begin(tmp.path(), 2, 8 << 20).unwrap();
    buffered.direct = None;
    // Whether this file system takes O_DIRECT at all: if it does, the log must have
    // written directly until its write was refused, and then buffered.
    let takes = Direct::open(&segment_path(tmp.path(), 2), MAGIC).is_some();
    let (mut x, mut kept) = (7u64, 0);
    for i in 0..400u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Sizes within a block, across blocks and whole blocks.
        let n = match i % 4 {
            0 => 1 + (x >> 33) as usize % 300,
            1 => 4096 - 8,
            2 => 1 + (x >> 33) as usize % 20_000,
            _ => 4096 * (1 + i as usize % 3),
        };
        let r = record(&vec![(i % 251) as u8 + 1; n]);
        for log in [&mut direct, &mut buffered] {
            let (_, start) = log.place(n).unwrap();
            log.append(&r).unwrap();
            if i % 37 == 5 {
                // A group whose transaction failed is taken back.
                log.undo(start);
            }
        }
        kept += usize::from(i % 37 != 5);
        if i == 300 {
            // Written directly so far; now the file system refuses a direct write, and
            // the log goes on buffered.
            assert_eq!(direct.direct.is_some(), takes);
            if let Some(d) = &mut direct.direct {
                d.refuse = true;
            }
        }
    }
    assert!(direct.direct.is_none(), "a refused write falls back");
    assert_eq!(direct.len, buffered.len);
    let a = std::fs::read(segment_path(tmp.path(), 1)).unwrap();
    let b = std::fs::read(segment_path(tmp.path(), 2)).unwrap();
    let len = direct.len as usize;
    assert!(a[..len] == b[..len], "the records differ");
    assert!(a[len..].iter().chain(&b[len..]).all(|&z| z == 0));
    let mut rd = Reader::open(tmp.path(), 1, 0).unwrap();
    let mut n = 0;
    while rd.next().is_ok() {
        n += 1;
    }
    assert_eq!(n, kept);
}

#[test]
fn a_full_segment_gives_way_to_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = Log::begin(tmp.path(), 7, 1 << 20).unwrap();
    log.len = (1 << 20) - 10;
    assert_eq!(log.place(100).unwrap(), (8, HEADER));
    assert_eq!(segment_ids(tmp.path()).unwrap(), vec![7, 8]);
    // The closed segment ends at its last record, without the zeros written ahead.
    let closed = std::fs::metadata(segment_path(tmp.path(), 7)).unwrap();
    assert_eq!(closed.len(), (1 << 20) - 10);
    assert!(Reader::open(tmp.path(), 9, 0).is_err());
}

#[test]
fn zeros_are_written_ahead_only_after_a_small_record() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = Log::begin(tmp.path(), 1, 64 << 20).unwrap();
    let path = segment_path(tmp.path(), 1);
    let size = || std::fs::metadata(&path).unwrap().len();
    let large = vec![3u8; PREPARE as usize];
    const { assert!(PREPARE >= LARGE) };
    let mut ends = Vec::new();
    for payload in [&b"small"[..], &large, &large, b"small again"] {
        log.place(payload.len()).unwrap();
        log.append(&record(payload)).unwrap();
        ends.push((log.len, size()));
    }
    // What is written after the records: a direct write fills the last block.
    let ahead = |i: usize| ends[i].1 - ends[i].0;
    let filled = 0..4096;
    // A small record: a mebibyte of zeros after it.
    assert!(filled.contains(&(ahead(0) - PREPARE)), "{ends:?}");
    // The first large record lands on the zeros (what is written stays at least as far);
    // the second one goes past them, and nothing is written after it but what fills its
    // last block (a direct write's) before the file ends.
    assert_eq!(ends[1].1, ends[0].1);
    assert!(filled.contains(&ahead(2)), "{ends:?}");
    // A small record again: zeros ahead again.
    assert!(filled.contains(&(ahead(3) - PREPARE)), "{ends:?}");
    // Every record reads back, and the end is found where the zeros start.
    let read = || {
        let mut rd = Reader::open(tmp.path(), 1, 0).unwrap();
        let mut lens = Vec::new();
        loop {
            match rd.next() {
                Ok((_, p)) => lens.push(p.len()),
                Err(end) => return (lens, end),
            }
        }
    };
    let n = large.len();
    assert_eq!(read(), (vec![5, n, n, 11], End::Unwritten(ends[3].0)));
    // And where the last large record ends, with nothing written after it.
    log.undo(ends[2].0);
    let (lens, end) = read();
    assert_eq!(lens, vec![5, n, n]);
    assert!(matches!(end, End::Clean | End::Unwritten(_)), "{end:?}");
}

#[test]
fn an_append_is_quick_unless_it_closes_the_segment_or_writes_zeros_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = 4 * PREPARE;
    let mut log = Log::begin(tmp.path(), 1, limit).unwrap();
    // A new segment has no zeros ahead yet: its first record writes them.
    assert!(!log.append_is_quick(100));
    let r = record(&[7; 92]);
    log.place(92).unwrap();
    log.append(&r).unwrap();
    assert!(log.append_is_quick(100));
    // Large records write no zeros ahead: two bring the log near where small ones would.
    for _ in 0..2 {
        assert!(log.append_is_quick(LARGE as usize));
        let big = record(&vec![7; LARGE as usize - 8]);
        log.place(big.len() - 8).unwrap();
        log.append(&big).unwrap();
    }
    // Half a mebibyte before the zeros end, the next small record writes more of them.
    let near = (log.prepared - PREPARE / 2 - log.len) as usize;
    assert!(near < LARGE as usize);
    assert!(log.append_is_quick(near));
    assert!(!log.append_is_quick(near + 1));
    // One past the limit closes the segment.
    assert!(!log.append_is_quick((limit - log.len + 1) as usize));
}
