//! Checkpoints and snapshot generations on SQLite.

use super::Sqlite;
use crate::checkpoint::{last_writes, Count, Entry, Pending, Proof, Write, COUNTS_SQL};
use crate::lease::Scope;
use crate::{Lease, Result};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

fn entry(id: String, r: &rusqlite::Row, at: usize) -> rusqlite::Result<Entry> {
    Ok(Entry {
        id,
        held: r.get::<_, Option<i64>>(at)?.map(|h| h as u64),
        pending: Pending::decode(r.get(at + 1)?, r.get(at + 2)?, r.get(at + 3)?, r.get(at + 4)?),
        proof: Proof::decode(r.get(at + 5)?),
    })
}

impl Sqlite {
    pub(crate) fn checkpoint_page(&self, mapping: i64, after: &str, limit: usize) -> Result<Vec<Entry>> {
        let mut stmt = self.wrap(self.conn.prepare_cached(
            "select id, held, pending, hash, attempts, first_failed, proof from checkpoint
             where mapping = ?1 and id > ?2 order by id limit ?3",
        ))?;
        let rows = self.wrap(stmt.query_map(params![mapping, after, limit as i64], |r| entry(r.get(0)?, r, 1)))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    pub(crate) fn checkpoint_entry(&self, mapping: i64, id: &str) -> Result<Option<Entry>> {
        self.wrap(
            self.conn
                .query_row(
                    "select held, pending, hash, attempts, first_failed, proof from checkpoint where mapping = ?1 and id = ?2",
                    params![mapping, id],
                    |r| entry(id.to_string(), r, 0),
                )
                .optional(),
        )
    }

    pub(crate) fn write_checkpoint(&mut self, mapping: i64, writes: &[Write], fence: Option<&Lease>) -> Result<()> {
        let wrap = self.wrapper();
        // immediate: the fence is read and the entries written under one write lock
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&wrap)?;
        if let Some(lease) = fence {
            super::leases::check_fence(&tx, lease, Scope::Mapping(mapping), &wrap)?;
        }
        {
            let mut put = tx
                .prepare_cached(
                    "insert or replace into checkpoint (mapping, id, held, pending, hash, attempts, first_failed, proof)
                     values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(&wrap)?;
            let mut del = tx.prepare_cached("delete from checkpoint where mapping = ?1 and id = ?2").map_err(&wrap)?;
            for w in last_writes(writes) {
                match w {
                    Write::Put(e) => {
                        let (code, hash, attempts, first) = e.pending.encode();
                        let proof = e.proof.map(Proof::encode);
                        put.execute(params![
                            mapping,
                            e.id,
                            e.held.map(|h| h as i64),
                            code,
                            hash,
                            attempts,
                            first,
                            proof
                        ])
                        .map_err(&wrap)?;
                    }
                    Write::Remove(id) => {
                        del.execute(params![mapping, id]).map_err(&wrap)?;
                    }
                }
            }
        }
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn clear_checkpoint(&self, mapping: i64) -> Result<()> {
        self.wrap(self.conn.execute("delete from checkpoint where mapping = ?1", [mapping]))?;
        Ok(())
    }

    /// Replaces the entries of `to` by those of `from`, in one transaction.
    pub(crate) fn swap_checkpoint(&mut self, from: i64, to: i64, fence: Option<&Lease>) -> Result<()> {
        let wrap = self.wrapper();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&wrap)?;
        if let Some(lease) = fence {
            super::leases::check_fence(&tx, lease, Scope::Mapping(to), &wrap)?;
        }
        tx.execute("delete from checkpoint where mapping = ?1", [to]).map_err(&wrap)?;
        tx.execute("update checkpoint set mapping = ?1 where mapping = ?2", [to, from]).map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn consent_signature(&self, mapping: i64, text: &str) -> Result<i64> {
        self.wrap(self.conn.execute(
            "insert into consent_signatures (mapping, id, signature)
             select ?1, coalesce(max(id), 0) + 1, ?2 from consent_signatures where mapping = ?1
             on conflict do nothing",
            params![mapping, text],
        ))?;
        self.wrap(self.conn.query_row(
            "select id from consent_signatures where mapping = ?1 and signature = ?2",
            params![mapping, text],
            |r| r.get(0),
        ))
    }

    pub(crate) fn consent_signature_by_id(&self, mapping: i64, id: i64) -> Result<Option<String>> {
        self.wrap(
            self.conn
                .query_row(
                    "select signature from consent_signatures where mapping = ?1 and id = ?2",
                    params![mapping, id],
                    |r| r.get(0),
                )
                .optional(),
        )
    }

    pub(crate) fn checkpoint_failed_ids(&self, mapping: i64) -> Result<Vec<String>> {
        let mut stmt =
            self.wrap(self.conn.prepare("select id from checkpoint where mapping = ?1 and pending = 2 order by id"))?;
        let rows = self.wrap(stmt.query_map([mapping], |r| r.get(0)))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    pub(crate) fn checkpoint_count(&self, mapping: i64, count: Count) -> Result<u64> {
        self.wrap(self.conn.query_row(count.sql(), [mapping], |r| r.get::<_, i64>(0))).map(|n| n as u64)
    }

    pub(crate) fn snapshot_generation(&self, mapping: i64) -> Result<Option<i64>> {
        self.wrap(
            self.conn
                .query_row("select generation from snapshot_generations where mapping = ?1", [mapping], |r| r.get(0))
                .optional(),
        )
    }

    pub(crate) fn set_snapshot_generation(
        &self,
        mapping: i64,
        generation: Option<i64>,
        fence: Option<&Lease>,
    ) -> Result<()> {
        let wrap = self.wrapper();
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(&wrap)?;
        if let Some(lease) = fence {
            super::leases::check_fence(&tx, lease, Scope::Mapping(mapping), &wrap)?;
        }
        match generation {
            Some(g) => tx.execute(
                "insert into snapshot_generations (mapping, generation) values (?1, ?2)
                 on conflict (mapping) do update set generation = excluded.generation",
                params![mapping, g],
            ),
            None => tx.execute("delete from snapshot_generations where mapping = ?1", [mapping]),
        }
        .map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn checkpoint_counts(&self, mapping: i64) -> Result<Vec<(String, i64)>> {
        let mut stmt = self.wrap(self.conn.prepare(COUNTS_SQL))?;
        let rows = self.wrap(stmt.query_map([mapping], |r| Ok((r.get(0)?, r.get(1)?))))?;
        rows.map(|r| self.wrap(r)).collect()
    }
}
