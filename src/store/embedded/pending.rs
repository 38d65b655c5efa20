//! What commit groups changed that redb gets only at the next checkpoint: session summaries
//! (with their place in the newest-first list) and heat additions.
//!
//! A busy session sends a batch every few hundred milliseconds, and each group used to read
//! its summary from redb, decode it, apply the batch, encode it and write it back, and move
//! its entry in `sessions_by_last`: about half of the write lane's time at the steady load
//! (`docs/benchmarks.md`). Here a group finds the summary in memory, and redb is written
//! once per session per checkpoint. Heat is merged the same way, once per record key.
//!
//! Nothing is lost in a crash: the log holds every group, and recovery applies the records
//! after the last checkpoint again. What keeps that true:
//! - every durable redb commit writes what is pending in its own transaction (`checkpoint`),
//!   so redb is never durable with the log applied past summaries it lacks; the checkpoint
//!   writes most of it just before, in slices ([`Inner::write_out_some`]), so that its
//!   durable commit, which stops every group, has little left;
//! - every other transaction that writes these tables (deletion, retention) writes what is
//!   pending first, in the same transaction ([`Inner::write_flushed`]);
//! - a group that fails after it changed what is pending leaves it in doubt, so the store is
//!   reopened and the log applied again ([`Inner::lose_pending`]);
//! - readers see what is pending: a session by looking here first, the list and heatmaps by
//!   writing it out before they read.
//!
//! [`Inner::write_flushed`]: super::shared::Inner::write_flushed
//! [`Inner::lose_pending`]: super::shared::Inner::lose_pending
//! [`Inner::write_out_some`]: super::shared::Inner::write_out_some

use std::collections::HashMap;

use redb::WriteTransaction;

use super::heat::add_heat;
use super::{encode, unavailable, BY_LAST, SESSIONS};
use crate::error::StoreError;
use crate::heat::HeatDelta;
use crate::store::summary::SessionSummary;

/// Sessions, or heat record keys, pending at most: a group that finds more writes them out
/// in its own transaction. Bounds the memory, and the work a checkpoint does.
const MAX_PENDING: usize = 8_192;

/// A session's summary that redb does not have yet.
pub(super) struct Dirty {
    pub summary: SessionSummary,
    /// Its key in `sessions_by_last` as redb has it (`None`: not there).
    pub stored_order: Option<u64>,
}

#[derive(Default)]
pub(super) struct Pending {
    /// site → sid → summary (two levels, so a lookup by `&str` needs no allocation).
    sessions: HashMap<String, HashMap<String, Dirty>>,
    sessions_len: usize,
    heat: HashMap<String, HeatDelta>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.sessions_len == 0 && self.heat.is_empty()
    }

    /// The pending summary of a session, if any.
    pub fn get(&self, site: &str, sid: &str) -> Option<&SessionSummary> {
        Some(&self.sessions.get(site)?.get(sid)?.summary)
    }

    /// Takes a session's pending summary out (a group puts it back, changed).
    pub fn take(&mut self, site: &str, sid: &str) -> Option<Dirty> {
        let sessions = self.sessions.get_mut(site)?;
        let d = sessions.remove(sid)?;
        self.sessions_len -= 1;
        Some(d)
    }

    pub fn put(&mut self, site: &str, sid: &str, d: Dirty) {
        let sessions = match self.sessions.get_mut(site) {
            Some(s) => s,
            None => self.sessions.entry(site.to_owned()).or_default(),
        };
        if sessions.insert(sid.to_owned(), d).is_none() {
            self.sessions_len += 1;
        }
    }

    pub fn add_heat(&mut self, site: &str, delta: &HeatDelta) {
        match self.heat.get_mut(site) {
            Some(d) => d.add(delta),
            None => {
                self.heat.insert(site.to_owned(), delta.clone());
            }
        }
    }

    /// Sessions pending.
    pub fn sessions_len(&self) -> usize {
        self.sessions_len
    }

    /// Takes up to `n` pending sessions out, into a `Pending` of their own (heat stays).
    pub fn split_off(&mut self, n: usize) -> Pending {
        let mut part = Pending::default();
        for (site, sessions) in &mut self.sessions {
            let want = n - part.sessions_len;
            if want == 0 {
                break;
            }
            let sids: Vec<String> = sessions.keys().take(want).cloned().collect();
            for sid in sids {
                if let Some(d) = sessions.remove(&sid) {
                    self.sessions_len -= 1;
                    part.put(site, &sid, d);
                }
            }
        }
        self.sessions.retain(|_, s| !s.is_empty());
        part
    }

    /// Puts back what [`Pending::split_off`] took (writing it failed). Nothing of it can have
    /// changed meanwhile: the caller held the lock throughout.
    pub fn merge(&mut self, part: Pending) {
        for (site, sessions) in part.sessions {
            for (sid, d) in sessions {
                self.put(&site, &sid, d);
            }
        }
        for (site, delta) in part.heat {
            self.add_heat(&site, &delta);
        }
    }

    fn full(&self) -> bool {
        self.sessions_len > MAX_PENDING
            || self.heat.values().map(|d| d.0.len()).sum::<usize>() > MAX_PENDING
    }

    /// Writes everything pending into `txn`. It stays pending until the caller, once `txn`
    /// has committed, calls [`Pending::clear`].
    pub fn write_to(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        if self.sessions_len > 0 {
            let mut sess_t = txn.open_table(SESSIONS).map_err(unavailable)?;
            let mut order_t = txn.open_table(BY_LAST).map_err(unavailable)?;
            for (site, sessions) in &self.sessions {
                for (sid, d) in sessions {
                    let key = (site.as_str(), sid.as_str());
                    let order = d.summary.order_key();
                    if d.stored_order != Some(order) {
                        if let Some(old) = d.stored_order {
                            order_t.remove((old, key.0, key.1)).map_err(unavailable)?;
                        }
                        order_t
                            .insert((order, key.0, key.1), ())
                            .map_err(unavailable)?;
                    }
                    sess_t
                        .insert(key, encode(&d.summary)?.as_slice())
                        .map_err(unavailable)?;
                }
            }
        }
        add_heat(txn, &self.heat)
    }

    pub fn clear(&mut self) {
        self.sessions.clear();
        self.sessions_len = 0;
        self.heat.clear();
    }

    /// When too much is pending: writes it into `txn` and forgets it at once. Only for a
    /// transaction whose failure leaves what is pending in doubt anyway (a group's, or
    /// recovery's).
    pub fn spill_if_full(&mut self, txn: &WriteTransaction) -> Result<(), StoreError> {
        if self.full() {
            self.write_to(txn)?;
            self.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::store::fixtures::chunk;
    use crate::store::Store;

    /// What a crash at this moment would leave: the files as the kernel has them.
    fn crash_copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to.join("log")).unwrap();
        std::fs::copy(from.join("spoor.redb"), to.join("spoor.redb")).unwrap();
        for f in std::fs::read_dir(from.join("log")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join("log").join(f.file_name().unwrap())).unwrap();
        }
    }

    /// A store whose checkpoints run only when a test (or a write) asks.
    fn without_timed_checkpoints(dir: &Path) -> super::super::EmbeddedStore {
        let settings = crate::config::EmbeddedConfig {
            checkpoint_ms: 3_600_000,
            ..Default::default()
        };
        super::super::EmbeddedStore::open_with(dir, &settings).unwrap()
    }

    #[tokio::test]
    async fn summaries_left_pending_survive_a_crash_after_other_durable_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let (live, copy) = (tmp.path().join("live"), tmp.path().join("copy"));
        let store = without_timed_checkpoints(&live);
        for seq in 0..5 {
            store.commit(Arc::new(vec![chunk(seq)])).await.unwrap();
        }
        // Pending, and seen by readers.
        assert!(!store.inner.pending().unwrap().is_empty());
        assert_eq!(
            store.session("shop", "s_1").await.unwrap().unwrap().batches,
            5
        );
        // A write that must be durable at once, between groups.
        assert!(!store.delete_device("shop", "d_none").await.unwrap());
        for seq in 5..8 {
            store.commit(Arc::new(vec![chunk(seq)])).await.unwrap();
        }
        assert!(!store.inner.pending().unwrap().is_empty());
        crash_copy(&live, &copy);
        drop(store);

        let store = super::super::EmbeddedStore::open(&copy).unwrap();
        let s = store.session("shop", "s_1").await.unwrap().unwrap();
        assert_eq!((s.batches, s.events, s.acked), (8, 24, 7));
        let page = store
            .list_sessions(&crate::store::SessionQuery::default(), 10)
            .await
            .unwrap();
        assert_eq!(page.sessions.len(), 1);
        assert_eq!(page.sessions[0].batches, 8);
    }

    /// Batch `seq` of session `sid` of shop.
    fn batch(sid: &str, seq: u64) -> crate::store::ChunkWrite {
        let mut c = chunk(seq);
        let mut meta = (*c.meta).clone();
        meta.sid = sid.into();
        c.meta = Arc::new(meta);
        c
    }

    #[tokio::test]
    async fn summaries_written_out_in_slices_are_read_and_survive_a_crash() {
        let tmp = tempfile::tempdir().unwrap();
        let (live, copy) = (tmp.path().join("live"), tmp.path().join("copy"));
        let store = without_timed_checkpoints(&live);
        let sids: Vec<String> = (0..10).map(|i| format!("s_{i}")).collect();
        for seq in 0..3 {
            let group = sids.iter().map(|s| batch(s, seq)).collect();
            store.commit(Arc::new(group)).await.unwrap();
        }
        // Four written out, then a batch more for one of them and for one still pending.
        assert!(store.inner.write_out_some(4).unwrap());
        assert_eq!(store.inner.pending().unwrap().sessions_len(), 6);
        let more = vec![batch("s_0", 3), batch("s_9", 3)];
        store.commit(Arc::new(more)).await.unwrap();
        let expect = |sid: &str| if sid == "s_0" || sid == "s_9" { 4 } else { 3 };
        for sid in &sids {
            let s = store.session("shop", sid).await.unwrap().unwrap();
            assert_eq!(
                (s.batches, s.acked),
                (expect(sid), expect(sid) as i64 - 1),
                "{sid}"
            );
        }
        // A crash now loses the written-out slice (not durable): the log brings it back.
        crash_copy(&live, &copy);
        let recovered = super::super::EmbeddedStore::open(&copy).unwrap();
        let page = recovered
            .list_sessions(&crate::store::SessionQuery::default(), 20)
            .await
            .unwrap();
        assert_eq!(page.sessions.len(), 10);
        for s in &page.sessions {
            assert_eq!(s.batches, expect(&s.sid), "{}", s.sid);
        }
        drop(recovered);
        // The checkpoint writes the rest out in slices and leaves nothing pending.
        super::super::recover::checkpoint(&store.inner).unwrap();
        assert!(store.inner.pending().unwrap().is_empty());
        assert!(!store.inner.write_out_some(4).unwrap());
        let page = store
            .list_sessions(&crate::store::SessionQuery::default(), 20)
            .await
            .unwrap();
        let total: u64 = page.sessions.iter().map(|s| s.batches).sum();
        assert_eq!(total, 32);
    }

    #[test]
    fn split_off_takes_at_most_n_sessions_and_merge_puts_them_back() {
        let mut p = Pending::default();
        let c = crate::store::fixtures::chunk(0);
        for (site, n) in [("shop", 5), ("blog", 4)] {
            for i in 0..n {
                let summary = SessionSummary::new(&c.meta);
                let d = Dirty {
                    summary,
                    stored_order: None,
                };
                p.put(site, &format!("s{i}"), d);
            }
        }
        let part = p.split_off(7);
        assert_eq!((part.sessions_len(), p.sessions_len()), (7, 2));
        let rest = p.split_off(7);
        assert_eq!((rest.sessions_len(), p.sessions_len()), (2, 0));
        assert!(p.is_empty());
        p.merge(part);
        p.merge(rest);
        assert_eq!(p.sessions_len(), 9);
        assert!(p.get("shop", "s4").is_some() && p.get("blog", "s3").is_some());
    }

    #[test]
    fn take_and_put_keep_the_count() {
        let mut p = Pending::default();
        let c = crate::store::fixtures::chunk(0);
        let d = || Dirty {
            summary: SessionSummary::new(&c.meta),
            stored_order: None,
        };
        assert!(p.is_empty());
        p.put("shop", "s1", d());
        p.put("shop", "s1", d());
        p.put("blog", "s1", d());
        assert_eq!(p.sessions_len, 2);
        assert!(p.get("shop", "s1").is_some() && p.get("shop", "s2").is_none());
        assert!(p.take("shop", "s1").is_some());
        assert!(p.take("shop", "s1").is_none());
        assert_eq!(p.sessions_len, 1);
        p.clear();
        assert!(p.is_empty() && p.get("blog", "s1").is_none());
    }
}
