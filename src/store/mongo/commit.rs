//! The write path: a group of chunks inserted unordered, each session's summary updated by
//! compare-and-swap (counting each seq once, see `applied`), device records and side records
//! (layouts, heat records), and tracker positions.

use super::*;

impl MongoStore {
    /// The group's chunks inserted unordered (duplicates are "already stored"), then each
    /// session's summary and each device's record brought up to date.
    pub(super) async fn commit_group(
        &self,
        chunks: &[ChunkWrite],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let docs: Vec<Document> = chunks.iter().map(chunk_doc).collect();
        let sizes: Vec<usize> = chunks.iter().map(|c| c.ev.len() + 256).collect();
        let dup = self.insert_all(&self.chunks, &docs, &sizes).await?;
        // Chunks stored earlier whose commit did not finish still carry the pending flag:
        // they are counted now.
        let dup_ids: Vec<&str> = docs
            .iter()
            .zip(&dup)
            .filter(|(_, d)| **d)
            .filter_map(|(doc, _)| doc.get_str("_id").ok())
            .collect();
        let mut pending: HashSet<String> = HashSet::new();
        if !dup_ids.is_empty() {
            let mut cursor = self
                .chunks
                .find(doc! {"_id": {"$in": &dup_ids}, "p": true})
                .projection(doc! {"_id": 1})
                .await
                .map_err(store_error)?;
            while let Some(d) = cursor.try_next().await.map_err(store_error)? {
                if let Ok(id) = d.get_str("_id") {
                    pending.insert(id.to_owned());
                }
            }
        }
        // A chunk is counted once per commit even if a group holds it twice.
        let mut seen = HashSet::new();
        let count: Vec<bool> = docs
            .iter()
            .zip(&dup)
            .map(|(d, dup)| {
                let id = d.get_str("_id").unwrap_or_default();
                (!dup || pending.contains(id)) && seen.insert(id.to_owned())
            })
            .collect();
        let counted: Vec<&ChunkWrite> = chunks
            .iter()
            .zip(&count)
            .filter_map(|(c, n)| n.then_some(c))
            .collect();
        self.side_records(&counted).await?;

        let mut by_session: HashMap<(&str, &str), (Vec<&ChunkWrite>, &ChunkWrite)> = HashMap::new();
        for c in chunks.iter() {
            by_session
                .entry((&c.meta.site, &c.meta.sid))
                .or_insert_with(|| (Vec::new(), c));
        }
        for c in &counted {
            if let Some(e) = by_session.get_mut(&(&*c.meta.site, &*c.meta.sid)) {
                e.0.push(c);
            }
        }
        // Sessions are independent documents: their updates run side by side, a bounded
        // number at a time, instead of one round trip after another.
        let mut updates = Vec::with_capacity(by_session.len());
        for (&key, (list, first)) in &by_session {
            updates.push(async move { self.update_session(list, first).await.map(|a| (key, a)) });
        }
        let acked: HashMap<(&str, &str), i64> = stream::iter(updates)
            .buffer_unordered(PARALLEL_UPDATES)
            .try_collect()
            .await?;
        self.add_heat(chunks).await?;
        let counted_ids: Vec<&str> = docs
            .iter()
            .zip(&count)
            .filter(|(_, n)| **n)
            .filter_map(|(d, _)| d.get_str("_id").ok())
            .collect();
        if !counted_ids.is_empty() {
            self.chunks
                .update_many(
                    doc! {"_id": {"$in": counted_ids}},
                    doc! {"$unset": {"p": ""}},
                )
                .await
                .map_err(store_error)?;
        }
        Ok(chunks
            .iter()
            .zip(&dup)
            .map(|(c, d)| CommitOutcome {
                stored: !d,
                acked: acked[&(&*c.meta.site, &*c.meta.sid)],
            })
            .collect())
    }

    /// Inserts documents unordered in as few commands as the limits allow; returns, per
    /// document, whether it was already stored.
    pub(super) async fn insert_all(
        &self,
        coll: &Collection<Document>,
        docs: &[Document],
        sizes: &[usize],
    ) -> Result<Vec<bool>, StoreError> {
        let mut dup = vec![false; docs.len()];
        for range in split(sizes, MAX_COMMAND_BYTES, MAX_COMMAND_OPS) {
            let part = &docs[range.clone()];
            let result = coll.insert_many(part).ordered(false).await.map(|_| ());
            for i in errors::duplicates(result)? {
                dup[range.start + i] = true;
            }
        }
        Ok(dup)
    }

    /// Makes `d` its device's record unless a newer fix is stored (a duplicate key on the
    /// upsert means exactly that). A fix without a battery level keeps the stored one.
    pub(super) async fn save_latest(&self, d: &Position) -> Result<(), StoreError> {
        let mut set = position_doc(d, device_id(&d.site, &d.did))?;
        set.remove("_id");
        if d.battery.is_none() {
            set.remove("battery");
        }
        let result = self
            .devices
            .update_one(
                doc! {"_id": device_id(&d.site, &d.did), "ts": {"$lt": d.ts}},
                doc! {"$set": set},
            )
            .upsert(true)
            .await
            .map(|_| ());
        errors::duplicates(result).map(|_| ())
    }

    pub(super) async fn store_positions(
        &self,
        positions: &[Position],
    ) -> Result<Vec<bool>, StoreError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let docs = positions
            .iter()
            .map(|p| position_doc(p, position_id(&p.site, &p.did, p.ts)))
            .collect::<Result<Vec<_>, _>>()?;
        let sizes = vec![512; docs.len()];
        let dup = self.insert_all(&self.positions, &docs, &sizes).await?;
        let mut latest: HashMap<(&str, &str), &Position> = HashMap::new();
        for p in positions {
            let e = latest.entry((&p.site, &p.did)).or_insert(p);
            if p.ts > e.ts {
                *e = p;
            }
        }
        let mut updates = Vec::with_capacity(latest.len());
        for d in latest.into_values() {
            updates.push(self.save_latest(d));
        }
        stream::iter(updates)
            .buffer_unordered(PARALLEL_UPDATES)
            .try_collect::<()>()
            .await?;
        Ok(dup.into_iter().map(|d| !d).collect())
    }

    /// Layouts and GPS fixes of chunks being counted.
    pub(super) async fn side_records(&self, chunks: &[&ChunkWrite]) -> Result<(), StoreError> {
        let mut fixes = Vec::new();
        for c in chunks {
            let site = &*c.meta.site;
            for (page, class, t, row) in &c.signals.layouts {
                self.save_layout(site, (page, *class), *t, row).await?;
            }
            let did = c.meta.device_id();
            fixes.extend(
                c.stats
                    .fixes
                    .iter()
                    .map(|f| Position::from_fix(site, did, f, "snippet")),
            );
        }
        self.store_positions(&fixes).await?;
        Ok(())
    }

    /// The highest N with every chunk 0..=N stored, starting from a known `acked`.
    pub(super) async fn contiguous(
        &self,
        site: &str,
        sid: &str,
        mut acked: i64,
    ) -> Result<i64, StoreError> {
        let from = chunk_id(site, sid, (acked + 1) as u64);
        let mut cursor = self
            .chunks
            .find(doc! {"_id": {"$gte": from, "$lte": chunk_id(site, sid, SEQ_END)}})
            .projection(doc! {"_id": 1})
            .sort(doc! {"_id": 1})
            .batch_size(1000)
            .await
            .map_err(store_error)?;
        while let Some(d) = cursor.try_next().await.map_err(store_error)? {
            match d.get_str("_id").ok().and_then(seq_of) {
                Some(seq) if seq as i64 == acked + 1 => acked += 1,
                _ => break,
            }
        }
        Ok(acked)
    }

    /// Counts `chunks` into their session's summary by compare-and-swap; returns its acked.
    pub(super) async fn update_session(
        &self,
        chunks: &[&ChunkWrite],
        first: &ChunkWrite,
    ) -> Result<i64, StoreError> {
        let (site, sid) = (&*first.meta.site, &*first.meta.sid);
        let id = session_id(site, sid);
        for _ in 0..MAX_CAS {
            let existing = self
                .sessions
                .find_one(doc! {"_id": &id})
                .await
                .map_err(store_error)?;
            let (mut s, version, mut applied, is_new) = match existing {
                Some(d) => {
                    let applied = Applied::read(&d);
                    let (s, v) = session_from_doc(d)?;
                    (s, v, applied, false)
                }
                None => (
                    SessionSummary::new(&first.meta),
                    0,
                    Applied::default(),
                    true,
                ),
            };
            let counted = applied.count_into(&mut s, chunks);
            let acked = self.contiguous(site, sid, s.acked).await?;
            if !is_new && !counted && acked == s.acked {
                return Ok(acked); // a pure resend: nothing to write
            }
            s.acked = acked;
            let mut d = session_doc(&s, version + 1)?;
            applied.write(&mut d);
            if is_new {
                match self.sessions.insert_one(d).await {
                    Ok(_) => return Ok(s.acked),
                    Err(e) if errors::classify(&errors::facts(&e)) == errors::Class::Duplicate => {
                        continue
                    }
                    Err(e) => return Err(store_error(e)),
                }
            }
            let r = self
                .sessions
                .replace_one(doc! {"_id": &id, "_v": version}, d)
                .await
                .map_err(store_error)?;
            if r.matched_count == 1 {
                return Ok(s.acked);
            }
        }
        Err(StoreError::Unavailable(format!(
            "session {site}/{sid} changed concurrently {MAX_CAS} times; resend"
        )))
    }
}
