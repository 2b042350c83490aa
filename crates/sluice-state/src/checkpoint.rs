//! Per-mapping checkpoints: for every record id, what the destination holds and what is pending.

use crate::{Result, StateStore};
use rusqlite::params;

/// What is pending for a record beyond what the destination holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Nothing: the destination holds the row as last seen (or never needed it).
    None,
    /// Consent withheld the record at the last sync (a marker for audits).
    Withheld,
    /// Delivery failed retryably; retried on the next syncs.
    Failed {
        /// Syncs that tried and failed.
        attempts: u32,
        /// Unix seconds of the first failure.
        first_failed: i64,
    },
    /// The destination rejected this version of the row; resent only when the row changes.
    Rejected {
        /// Hash of the rejected version.
        hash: u64,
    },
    /// Retries ran out for this version of the row; resent only when the row changes.
    GaveUp {
        /// Hash of the version that could not be delivered.
        hash: u64,
    },
}

/// One record's checkpoint in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The record id.
    pub id: String,
    /// Hash of the row as the destination last received it; `None` if it does not hold it.
    pub held: Option<u64>,
    /// What is pending.
    pub pending: Pending,
    /// Proof of consent of the version the destination holds: the run that delivered it and
    /// the consent it went out under (docs/PRIVACY.md "Proof of consent").
    pub proof: Option<Proof>,
}

/// Under which consent, and in which run, a record was delivered: stored with its checkpoint
/// entry as one integer (`run << 16 | signature`, 4-5 bytes for the first 32k runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// The sync run that delivered it (the `runs` table gives its time).
    pub run: i64,
    /// The mapping's consent signature ([`StateStore::consent_signature`]): the categories the
    /// destination required and the record's value of each.
    pub signature: u16,
}

impl Proof {
    fn encode(self) -> i64 {
        (self.run << 16) | i64::from(self.signature)
    }

    fn decode(v: Option<i64>) -> Option<Self> {
        v.map(|v| Self { run: v >> 16, signature: (v & 0xffff) as u16 })
    }
}

/// A consent signature: what a destination required of a record and what the record said.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsentSignature {
    /// The consent rule that applied (`R1 unmapped destination`, `R2 all`, `R4 unmapped model`, ...).
    pub rule: String,
    /// Each required category's value in the record (empty: none was required).
    pub consent: std::collections::BTreeMap<String, bool>,
}

pub(crate) const PROOF_SCHEMA: &str = "
create table if not exists consent_signatures (
    mapping integer not null,
    id integer not null,
    signature text not null,
    primary key (mapping, id),
    unique (mapping, signature)
);
";

impl Pending {
    fn encode(self) -> (i64, Option<i64>, u32, Option<i64>) {
        match self {
            Pending::None => (0, None, 0, None),
            Pending::Withheld => (1, None, 0, None),
            Pending::Failed { attempts, first_failed } => (2, None, attempts, Some(first_failed)),
            Pending::Rejected { hash } => (3, Some(hash as i64), 0, None),
            Pending::GaveUp { hash } => (4, Some(hash as i64), 0, None),
        }
    }

    fn decode(code: i64, hash: Option<i64>, attempts: u32, first_failed: Option<i64>) -> Self {
        match code {
            1 => Pending::Withheld,
            2 => Pending::Failed { attempts, first_failed: first_failed.unwrap_or(0) },
            3 => Pending::Rejected { hash: hash.unwrap_or(0) as u64 },
            4 => Pending::GaveUp { hash: hash.unwrap_or(0) as u64 },
            _ => Pending::None,
        }
    }
}

/// A change to a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Insert or replace the entry.
    Put(Entry),
    /// Remove the record (delivered as deleted, or gone and never held).
    Remove(String),
}

pub use Write as CheckpointWrite;

impl StateStore {
    /// Up to `limit` entries of `mapping` with ids after `after`, in byte order of ids.
    pub fn checkpoint_page(&self, mapping: i64, after: Option<&str>, limit: usize) -> Result<Vec<Entry>> {
        let mut stmt = self.wrap(self.conn.prepare_cached(
            "select id, held, pending, hash, attempts, first_failed, proof from checkpoint
             where mapping = ?1 and id > ?2 order by id limit ?3",
        ))?;
        let rows = self.wrap(stmt.query_map(params![mapping, after.unwrap_or(""), limit as i64], |r| {
            Ok(Entry {
                id: r.get(0)?,
                held: r.get::<_, Option<i64>>(1)?.map(|h| h as u64),
                pending: Pending::decode(r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                proof: Proof::decode(r.get(6)?),
            })
        }))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.wrap(r)?);
        }
        // the empty id sorts first and `id > ''` skips it: fetch it on the first page
        if after.is_none() {
            if let Some(e) = self.checkpoint_entry(mapping, "")? {
                out.insert(0, e);
            }
        }
        Ok(out)
    }

    /// One entry.
    pub fn checkpoint_entry(&self, mapping: i64, id: &str) -> Result<Option<Entry>> {
        use rusqlite::OptionalExtension;
        self.wrap(
            self.conn
                .query_row(
                    "select held, pending, hash, attempts, first_failed, proof from checkpoint
                     where mapping = ?1 and id = ?2",
                    params![mapping, id],
                    |r| {
                        Ok(Entry {
                            id: id.to_string(),
                            held: r.get::<_, Option<i64>>(0)?.map(|h| h as u64),
                            pending: Pending::decode(r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                            proof: Proof::decode(r.get(5)?),
                        })
                    },
                )
                .optional(),
        )
    }

    /// Applies writes to a mapping's checkpoint atomically.
    pub fn write_checkpoint(&mut self, mapping: i64, writes: &[Write]) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let path = self.path.display().to_string();
        let wrap = |source| crate::StateError::Db { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(wrap)?;
        {
            let mut put = tx
                .prepare_cached(
                    "insert or replace into checkpoint (mapping, id, held, pending, hash, attempts, first_failed, proof)
                     values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(wrap)?;
            let mut del = tx.prepare_cached("delete from checkpoint where mapping = ?1 and id = ?2").map_err(wrap)?;
            for w in writes {
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
                        .map_err(wrap)?;
                    }
                    Write::Remove(id) => {
                        del.execute(params![mapping, id]).map_err(wrap)?;
                    }
                }
            }
        }
        tx.commit().map_err(wrap)
    }

    /// Re-keys a mapping's checkpoint (when its id order changes): every key `k` becomes
    /// `rekey(k)`; entries `rekey` cannot map are dropped and counted. Atomic: the new keys are
    /// written aside under a temporary mapping id and swapped in one transaction.
    pub fn rekey_checkpoint(&mut self, mapping: i64, rekey: &dyn Fn(&str) -> Option<String>) -> Result<u64> {
        let temp = -mapping - 1;
        self.wrap(self.conn.execute("delete from checkpoint where mapping = ?1", [temp]))?;
        let mut after: Option<String> = None;
        let mut dropped = 0;
        loop {
            let page = self.checkpoint_page(mapping, after.as_deref(), 4096)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            let writes: Vec<Write> = page
                .into_iter()
                .filter_map(|e| match rekey(&e.id) {
                    Some(id) => Some(Write::Put(Entry { id, ..e })),
                    None => {
                        dropped += 1;
                        None
                    }
                })
                .collect();
            self.write_checkpoint(temp, &writes)?;
        }
        let path = self.path.display().to_string();
        let wrap = |source| crate::StateError::Db { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(wrap)?;
        tx.execute("delete from checkpoint where mapping = ?1", [mapping]).map_err(wrap)?;
        tx.execute("update checkpoint set mapping = ?1 where mapping = ?2", [mapping, temp]).map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        Ok(dropped)
    }

    /// The id of a mapping's consent signature, created on first use (ids are small: one per
    /// combination of required categories and values the mapping met).
    pub fn consent_signature(&self, mapping: i64, sig: &ConsentSignature) -> Result<u16> {
        let text = serde_json::to_string(sig).map_err(|e| crate::StateError::Corrupt(e.to_string()))?;
        self.wrap(self.conn.execute(
            "insert into consent_signatures (mapping, id, signature)
             select ?1, coalesce(max(id), 0) + 1, ?2 from consent_signatures where mapping = ?1
             on conflict do nothing",
            params![mapping, text],
        ))?;
        let id: i64 = self.wrap(self.conn.query_row(
            "select id from consent_signatures where mapping = ?1 and signature = ?2",
            params![mapping, text],
            |r| r.get(0),
        ))?;
        u16::try_from(id).map_err(|_| crate::StateError::Corrupt(format!("consent signature {id} out of range")))
    }

    /// A mapping's consent signature by id.
    pub fn consent_signature_by_id(&self, mapping: i64, id: u16) -> Result<Option<ConsentSignature>> {
        use rusqlite::OptionalExtension;
        let text: Option<String> = self.wrap(
            self.conn
                .query_row(
                    "select signature from consent_signatures where mapping = ?1 and id = ?2",
                    params![mapping, id],
                    |r| r.get(0),
                )
                .optional(),
        )?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| crate::StateError::Corrupt(e.to_string()))).transpose()
    }

    /// Ids of a mapping's entries that failed retryably (retried on the next sync).
    pub fn checkpoint_failed_ids(&self, mapping: i64) -> Result<Vec<String>> {
        let mut stmt =
            self.wrap(self.conn.prepare("select id from checkpoint where mapping = ?1 and pending = 2 order by id"))?;
        let rows = self.wrap(stmt.query_map([mapping], |r| r.get(0)))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    /// How many records the destination of a mapping holds.
    pub fn checkpoint_held(&self, mapping: i64) -> Result<u64> {
        self.count_entries("select count(*) from checkpoint where mapping = ?1 and held is not null", mapping)
    }

    /// How many records consent withholds from a mapping's destination now.
    pub fn checkpoint_withheld(&self, mapping: i64) -> Result<u64> {
        self.count_entries("select count(*) from checkpoint where mapping = ?1 and pending = 1", mapping)
    }

    fn count_entries(&self, sql: &str, mapping: i64) -> Result<u64> {
        self.wrap(self.conn.query_row(sql, [mapping], |r| r.get::<_, i64>(0))).map(|n| n as u64)
    }

    /// The warehouse snapshot generation a mapping has caught up with (`None`: none).
    pub fn snapshot_generation(&self, mapping: i64) -> Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        self.wrap(
            self.conn
                .query_row("select generation from snapshot_generations where mapping = ?1", [mapping], |r| r.get(0))
                .optional(),
        )
    }

    /// Records (`Some`) or forgets (`None`) the snapshot generation a mapping caught up with.
    pub fn set_snapshot_generation(&self, mapping: i64, generation: Option<i64>) -> Result<()> {
        match generation {
            Some(g) => self.wrap(self.conn.execute(
                "insert into snapshot_generations (mapping, generation) values (?1, ?2)
                 on conflict (mapping) do update set generation = excluded.generation",
                params![mapping, g],
            )),
            None => self.wrap(self.conn.execute("delete from snapshot_generations where mapping = ?1", [mapping])),
        }?;
        Ok(())
    }

    /// Number of checkpoint entries of a mapping, by pending state name.
    pub fn checkpoint_counts(&self, mapping: i64) -> Result<Vec<(String, i64)>> {
        let mut stmt = self.wrap(self.conn.prepare(
            "select case pending when 0 then 'settled' when 1 then 'withheld' when 2 then 'failed'
                    when 3 then 'rejected' else 'gave_up' end, count(*)
             from checkpoint where mapping = ?1 group by 1 order by 1",
        ))?;
        let rows = self.wrap(stmt.query_map([mapping], |r| Ok((r.get(0)?, r.get(1)?))))?;
        rows.map(|r| self.wrap(r)).collect()
    }
}
