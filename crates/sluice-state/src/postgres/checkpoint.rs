//! Checkpoints and snapshot generations on PostgreSQL. A batch of writes is sent as arrays
//! (`unnest`), a few thousand entries per statement, in one transaction.

use super::Postgres;
use crate::checkpoint::{last_writes, Count, Entry, Pending, Proof, Write, COUNTS_SQL};
use crate::lease::Scope;
use crate::{Lease, Result};

/// Entries per statement of a batch.
const CHUNK: usize = 5000;

fn entry(id: String, r: &postgres::Row, at: usize) -> Entry {
    Entry {
        id,
        held: r.get::<_, Option<i64>>(at).map(|h| h as u64),
        pending: Pending::decode(
            r.get::<_, i16>(at + 1).into(),
            r.get(at + 2),
            r.get::<_, i32>(at + 3) as u32,
            r.get(at + 4),
        ),
        proof: Proof::decode(r.get(at + 5)),
    }
}

/// Columns of a chunk of puts, one array each.
#[derive(Default)]
struct Puts<'a> {
    ids: Vec<&'a str>,
    held: Vec<Option<i64>>,
    pending: Vec<i16>,
    hash: Vec<Option<i64>>,
    attempts: Vec<i32>,
    first_failed: Vec<Option<i64>>,
    proof: Vec<Option<i64>>,
}

impl<'a> Puts<'a> {
    fn push(&mut self, e: &'a Entry) {
        let (code, hash, attempts, first) = e.pending.encode();
        self.ids.push(&e.id);
        self.held.push(e.held.map(|h| h as i64));
        self.pending.push(code as i16);
        self.hash.push(hash);
        // attempts count syncs: far below i32::MAX; saturate rather than wrap
        self.attempts.push(i32::try_from(attempts).unwrap_or(i32::MAX));
        self.first_failed.push(first);
        self.proof.push(e.proof.map(Proof::encode));
    }
}

impl Postgres {
    pub(crate) fn checkpoint_page(&self, mapping: i64, after: &str, limit: usize) -> Result<Vec<Entry>> {
        let wrap = self.wrapper();
        let rows = self
            .client()?
            .query(
                "select id, held, pending, hash, attempts, first_failed, proof from checkpoint
                 where mapping = $1 and id > $2 order by id limit $3",
                &[&mapping, &after, &(limit.min(i64::MAX as usize) as i64)],
            )
            .map_err(wrap)?;
        Ok(rows.iter().map(|r| entry(r.get(0), r, 1)).collect())
    }

    pub(crate) fn checkpoint_entry(&self, mapping: i64, id: &str) -> Result<Option<Entry>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt(
                "select held, pending, hash, attempts, first_failed, proof from checkpoint where mapping = $1 and id = $2",
                &[&mapping, &id],
            )
            .map_err(wrap)?;
        Ok(row.map(|r| entry(id.to_string(), &r, 0)))
    }

    pub(crate) fn write_checkpoint(&mut self, mapping: i64, writes: &[Write], fence: Option<&Lease>) -> Result<()> {
        let wrap = self.wrapper();
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(&wrap)?;
        if let Some(lease) = fence {
            super::leases::check_fence(&mut tx, lease, Scope::Mapping(mapping), &wrap)?;
        }
        // one write per id (the last), so no statement touches a row twice
        let writes = last_writes(writes);
        let put = tx
            .prepare(
                "insert into checkpoint (mapping, id, held, pending, hash, attempts, first_failed, proof)
                 select $1::int8, * from unnest($2::text[], $3::int8[], $4::int2[], $5::int8[], $6::int4[], $7::int8[],
                     $8::int8[])
                 on conflict (mapping, id) do update set held = excluded.held, pending = excluded.pending,
                     hash = excluded.hash, attempts = excluded.attempts, first_failed = excluded.first_failed,
                     proof = excluded.proof",
            )
            .map_err(&wrap)?;
        let del = tx.prepare("delete from checkpoint where mapping = $1 and id = any($2)").map_err(&wrap)?;
        for chunk in writes.chunks(CHUNK) {
            let mut puts = Puts::default();
            let mut removes: Vec<&str> = Vec::new();
            for w in chunk {
                match w {
                    Write::Put(e) => puts.push(e),
                    Write::Remove(id) => removes.push(id),
                }
            }
            if !puts.ids.is_empty() {
                tx.execute(
                    &put,
                    &[
                        &mapping,
                        &puts.ids,
                        &puts.held,
                        &puts.pending,
                        &puts.hash,
                        &puts.attempts,
                        &puts.first_failed,
                        &puts.proof,
                    ],
                )
                .map_err(&wrap)?;
            }
            if !removes.is_empty() {
                tx.execute(&del, &[&mapping, &removes]).map_err(&wrap)?;
            }
        }
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn clear_checkpoint(&self, mapping: i64) -> Result<()> {
        let wrap = self.wrapper();
        self.client()?.execute("delete from checkpoint where mapping = $1", &[&mapping]).map_err(wrap)?;
        Ok(())
    }

    /// Replaces the entries of `to` by those of `from`, in one transaction.
    pub(crate) fn swap_checkpoint(&mut self, from: i64, to: i64, fence: Option<&Lease>) -> Result<()> {
        let wrap = self.wrapper();
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(&wrap)?;
        if let Some(lease) = fence {
            super::leases::check_fence(&mut tx, lease, Scope::Mapping(to), &wrap)?;
        }
        tx.execute("delete from checkpoint where mapping = $1", &[&to]).map_err(&wrap)?;
        tx.execute("update checkpoint set mapping = $1 where mapping = $2", &[&to, &from]).map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn consent_signature(&self, mapping: i64, text: &str) -> Result<i64> {
        let wrap = self.wrapper();
        let mut c = self.client()?;
        // two processes may number a new signature alike: the loser inserts nothing and retries
        for _ in 0..5 {
            c.execute(
                "insert into consent_signatures (mapping, id, signature)
                 select $1, coalesce(max(id), 0) + 1, $2::text from consent_signatures where mapping = $1
                 on conflict do nothing",
                &[&mapping, &text],
            )
            .map_err(&wrap)?;
            let row = c
                .query_opt(
                    "select id from consent_signatures where mapping = $1 and signature = $2",
                    &[&mapping, &text],
                )
                .map_err(&wrap)?;
            if let Some(r) = row {
                return Ok(i64::from(r.get::<_, i32>(0)));
            }
        }
        Err(crate::StateError::Corrupt(format!("consent signature of mapping {mapping} could not be numbered")))
    }

    pub(crate) fn consent_signature_by_id(&self, mapping: i64, id: i64) -> Result<Option<String>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt(
                "select signature from consent_signatures where mapping = $1 and id = $2",
                &[&mapping, &(id as i32)],
            )
            .map_err(wrap)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(crate) fn checkpoint_failed_ids(&self, mapping: i64) -> Result<Vec<String>> {
        let wrap = self.wrapper();
        let rows = self
            .client()?
            .query("select id from checkpoint where mapping = $1 and pending = 2 order by id", &[&mapping])
            .map_err(wrap)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(crate) fn checkpoint_count(&self, mapping: i64, count: Count) -> Result<u64> {
        let wrap = self.wrapper();
        let n: i64 = self.client()?.query_one(count.sql(), &[&mapping]).map_err(wrap)?.get(0);
        Ok(n as u64)
    }

    pub(crate) fn snapshot_generation(&self, mapping: i64) -> Result<Option<i64>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt("select generation from snapshot_generations where mapping = $1", &[&mapping])
            .map_err(wrap)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(crate) fn set_snapshot_generation(
        &self,
        mapping: i64,
        generation: Option<i64>,
        fence: Option<&Lease>,
    ) -> Result<()> {
        let wrap = self.wrapper();
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(&wrap)?;
        if let Some(lease) = fence {
            super::leases::check_fence(&mut tx, lease, Scope::Mapping(mapping), &wrap)?;
        }
        match generation {
            Some(g) => tx.execute(
                "insert into snapshot_generations (mapping, generation) values ($1, $2)
                 on conflict (mapping) do update set generation = excluded.generation",
                &[&mapping, &g],
            ),
            None => tx.execute("delete from snapshot_generations where mapping = $1", &[&mapping]),
        }
        .map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn checkpoint_counts(&self, mapping: i64) -> Result<Vec<(String, i64)>> {
        let wrap = self.wrapper();
        let rows = self.client()?.query(COUNTS_SQL, &[&mapping]).map_err(wrap)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
