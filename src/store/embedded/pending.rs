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
//!   so redb is never durable with the log applied past summaries it lacks;
//! - every other transaction that writes these tables (deletion, retention) writes what is
//!   pending first, in the same transaction ([`Inner::write_flushed`]);
//! - a group that fails after it changed what is pending leaves it in doubt, so the store is
//!   reopened and the log applied again ([`Inner::lose_pending`]);
//! - readers see what is pending: a session by looking here first, the list and heatmaps by
//!   writing it out before they read.
//!
//! [`Inner::write_flushed`]: super::shared::Inner::write_flushed
//! [`Inner::lose_pending`]: super::shared::Inner::lose_pending

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

    #[tokio::test]
    async fn summaries_left_pending_survive_a_crash_after_other_durable_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let (live, copy) = (tmp.path().join("live"), tmp.path().join("copy"));
        let settings = crate::config::EmbeddedConfig {
            checkpoint_ms: 3_600_000,
            ..Default::default()
        };
        let store = super::super::EmbeddedStore::open_with(&live, &settings).unwrap();
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
