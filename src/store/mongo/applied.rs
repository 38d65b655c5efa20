//! Which batches a MongoDB session summary already counts, so that counting is idempotent.
//!
//! Without transactions, a commit inserts chunks (flagged pending), updates the summary, then
//! clears the flags. A crash between the last two steps, or two servers finishing the same
//! pending chunk at once, would count a batch twice if the summary did not remember what it
//! holds. It does, compactly: every seq up to a watermark, plus the few above it that arrived
//! out of order. The record is written by the same compare-and-swap as the counts, so the two
//! never disagree.

use mongodb::bson::{Bson, Document};

use super::super::summary::SessionSummary;
use super::super::ChunkWrite;

/// Out-of-order seqs remembered at most. The snippet sends in order and resends from its
/// oldest unacked batch, so gaps close quickly; a client sending sparse seqs on purpose only
/// loses exactness of its own session's counts past this many gaps, never memory.
pub const MAX_OUT_OF_ORDER: usize = 512;

/// Seqs counted: all of `0..=upto`, and those in `above` (sorted, each > `upto + 1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub upto: i64,
    pub above: Vec<i64>,
}

impl Default for Applied {
    fn default() -> Self {
        Applied {
            upto: -1,
            above: Vec::new(),
        }
    }
}

impl Applied {
    pub fn contains(&self, seq: i64) -> bool {
        seq <= self.upto || self.above.binary_search(&seq).is_ok()
    }

    /// Records `seq` as counted; `false` if it already was.
    pub fn insert(&mut self, seq: i64) -> bool {
        if seq < 0 || self.contains(seq) {
            return false;
        }
        if seq == self.upto + 1 {
            self.upto = seq;
            let run = self
                .above
                .iter()
                .zip(seq + 1..)
                .take_while(|(have, want)| **have == *want)
                .count();
            self.upto += run as i64;
            self.above.drain(..run);
        } else if self.above.len() < MAX_OUT_OF_ORDER {
            let at = self.above.partition_point(|s| *s < seq);
            self.above.insert(at, seq);
        }
        true
    }

    /// Counts the chunks not counted yet into `s`; `true` if any were.
    pub fn count_into(&mut self, s: &mut SessionSummary, chunks: &[&ChunkWrite]) -> bool {
        let mut changed = false;
        for c in chunks {
            if self.insert(c.seq as i64) {
                s.apply(c);
                changed = true;
            }
        }
        changed
    }

    /// Stored in the session document as `ap` (watermark) and `apx` (the rest).
    pub fn write(&self, d: &mut Document) {
        d.insert("ap", self.upto);
        d.insert(
            "apx",
            self.above
                .iter()
                .copied()
                .map(Bson::Int64)
                .collect::<Vec<_>>(),
        );
    }

    /// From a session document; a document without the fields counts nothing yet.
    pub fn read(d: &Document) -> Applied {
        let upto = match d.get("ap") {
            Some(Bson::Int64(n)) => *n,
            Some(Bson::Int32(n)) => i64::from(*n),
            _ => -1,
        };
        let mut above: Vec<i64> = match d.get("apx") {
            Some(Bson::Array(a)) => a
                .iter()
                .filter_map(|b| match b {
                    Bson::Int64(n) => Some(*n),
                    Bson::Int32(n) => Some(i64::from(*n)),
                    _ => None,
                })
                .filter(|n| *n > upto + 1)
                .collect(),
            _ => Vec::new(),
        };
        above.sort_unstable();
        above.dedup();
        above.truncate(MAX_OUT_OF_ORDER);
        Applied { upto, above }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::chunk;

    #[test]
    fn in_order_seqs_move_the_watermark_and_repeats_are_refused() {
        let mut a = Applied::default();
        assert!(!a.contains(0));
        assert!(a.insert(0) && a.insert(1) && a.insert(2));
        assert_eq!((a.upto, a.above.len()), (2, 0));
        assert!(!a.insert(1), "already counted");
        assert!(!a.insert(-1), "no negative seqs");
    }

    #[test]
    fn gaps_are_remembered_until_they_close() {
        let mut a = Applied::default();
        assert!(a.insert(3) && a.insert(1) && a.insert(5));
        assert_eq!((a.upto, a.above.clone()), (-1, vec![1, 3, 5]));
        assert!(!a.insert(3));
        assert!(a.insert(0));
        assert_eq!((a.upto, a.above.clone()), (1, vec![3, 5]));
        assert!(a.insert(2));
        assert_eq!((a.upto, a.above.clone()), (3, vec![5]));
        assert!(a.insert(4));
        assert_eq!((a.upto, a.above.clone()), (5, vec![]));
    }

    #[test]
    fn sparse_seqs_cannot_grow_the_record_past_its_bound() {
        let mut a = Applied::default();
        for n in 0..(MAX_OUT_OF_ORDER as i64 + 100) {
            assert!(a.insert(2 * n + 1));
        }
        assert_eq!(a.above.len(), MAX_OUT_OF_ORDER);
        // What is remembered is still refused; closing the gaps still works.
        assert!(!a.insert(1));
        assert!(a.insert(0));
        assert_eq!(a.upto, 1);
    }

    #[test]
    fn the_record_round_trips_through_its_document() {
        let mut a = Applied::default();
        for s in [0, 1, 2, 7, 9] {
            a.insert(s);
        }
        let mut d = Document::new();
        a.write(&mut d);
        assert_eq!(Applied::read(&d), a);
        assert_eq!(Applied::read(&Document::new()), Applied::default());
        // Whatever a damaged document holds, the record comes back sorted and bounded.
        let d = mongodb::bson::doc! {"ap": 3_i32, "apx": [9_i64, 2_i64, 9_i64, "x", 6_i32]};
        assert_eq!(
            Applied::read(&d),
            Applied {
                upto: 3,
                above: vec![6, 9]
            }
        );
    }

    #[test]
    fn a_half_finished_commit_resent_is_counted_once() {
        let (c0, c1, c2) = (chunk(0), chunk(1), chunk(2));
        let mut s = SessionSummary::new(&c0.meta);
        let mut a = Applied::default();
        assert!(a.count_into(&mut s, &[&c0, &c1]));
        // The summary was written but the pending flags were not cleared: the resend of
        // c1 (still pending) arrives with the new c2. Only c2 counts.
        assert!(a.count_into(&mut s, &[&c1, &c2]));
        assert_eq!((s.batches, s.events), (3, 9));
        // A second server finishing the same pending chunk changes nothing.
        assert!(!a.count_into(&mut s, &[&c1]));
        assert_eq!((s.batches, s.events), (3, 9));
    }
}
