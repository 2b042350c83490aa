//! Per-mapping checkpoints: for every record id, what the destination holds and what is pending.

use crate::{on, Lease, Result, StateStore};

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
    pub(crate) fn encode(self) -> i64 {
        (self.run << 16) | i64::from(self.signature)
    }

    pub(crate) fn decode(v: Option<i64>) -> Option<Self> {
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

/// The table of consent signatures on SQLite (PostgreSQL: migration step 2).
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
    pub(crate) fn encode(self) -> (i64, Option<i64>, u32, Option<i64>) {
        match self {
            Pending::None => (0, None, 0, None),
            Pending::Withheld => (1, None, 0, None),
            Pending::Failed { attempts, first_failed } => (2, None, attempts, Some(first_failed)),
            Pending::Rejected { hash } => (3, Some(hash as i64), 0, None),
            Pending::GaveUp { hash } => (4, Some(hash as i64), 0, None),
        }
    }

    pub(crate) fn decode(code: i64, hash: Option<i64>, attempts: u32, first_failed: Option<i64>) -> Self {
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
        let mut out = on!(self, b => b.checkpoint_page(mapping, after.unwrap_or(""), limit))?;
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
        on!(self, b => b.checkpoint_entry(mapping, id))
    }

    /// Applies writes to a mapping's checkpoint atomically (in order: the last write of an id wins).
    pub fn write_checkpoint(&mut self, mapping: i64, writes: &[Write]) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        on!(mut self, b => b.write_checkpoint(mapping, writes, None))
    }

    /// [`write_checkpoint`](Self::write_checkpoint) under a lease: refused with
    /// [`StateError::Fenced`](crate::StateError::Fenced), storing nothing, unless `lease` is still
    /// the model's current, unexpired lease (checked in the write's own transaction).
    pub fn write_checkpoint_fenced(&mut self, lease: &Lease, mapping: i64, writes: &[Write]) -> Result<()> {
        on!(mut self, b => b.write_checkpoint(mapping, writes, Some(lease)))
    }

    /// Re-keys a mapping's checkpoint (when its id order changes): every key `k` becomes
    /// `rekey(k)`; entries `rekey` cannot map are dropped and counted. Atomic: the new keys are
    /// written aside under a temporary mapping id and swapped in one transaction.
    pub fn rekey_checkpoint(&mut self, mapping: i64, rekey: &dyn Fn(&str) -> Option<String>) -> Result<u64> {
        self.rekey(mapping, rekey, None)
    }

    /// [`rekey_checkpoint`](Self::rekey_checkpoint) under a lease: the swap is refused with
    /// [`StateError::Fenced`](crate::StateError::Fenced), leaving the checkpoint as it was, unless
    /// `lease` is still held.
    pub fn rekey_checkpoint_fenced(
        &mut self,
        lease: &Lease,
        mapping: i64,
        rekey: &dyn Fn(&str) -> Option<String>,
    ) -> Result<u64> {
        self.rekey(mapping, rekey, Some(lease))
    }

    fn rekey(&mut self, mapping: i64, rekey: &dyn Fn(&str) -> Option<String>, fence: Option<&Lease>) -> Result<u64> {
        let temp = -mapping - 1;
        on!(self, b => b.clear_checkpoint(temp))?;
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
        on!(mut self, b => b.swap_checkpoint(temp, mapping, fence))?;
        Ok(dropped)
    }

    /// The id of a mapping's consent signature, created on first use (ids are small: one per
    /// combination of required categories and values the mapping met).
    pub fn consent_signature(&self, mapping: i64, sig: &ConsentSignature) -> Result<u16> {
        let text = serde_json::to_string(sig).map_err(|e| crate::StateError::Corrupt(e.to_string()))?;
        let id = on!(self, b => b.consent_signature(mapping, &text))?;
        u16::try_from(id).map_err(|_| crate::StateError::Corrupt(format!("consent signature {id} out of range")))
    }

    /// A mapping's consent signature by id.
    pub fn consent_signature_by_id(&self, mapping: i64, id: u16) -> Result<Option<ConsentSignature>> {
        let text = on!(self, b => b.consent_signature_by_id(mapping, i64::from(id)))?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| crate::StateError::Corrupt(e.to_string()))).transpose()
    }

    /// Ids of a mapping's entries that failed retryably (retried on the next sync).
    pub fn checkpoint_failed_ids(&self, mapping: i64) -> Result<Vec<String>> {
        on!(self, b => b.checkpoint_failed_ids(mapping))
    }

    /// How many records the destination of a mapping holds.
    pub fn checkpoint_held(&self, mapping: i64) -> Result<u64> {
        on!(self, b => b.checkpoint_count(mapping, Count::Held))
    }

    /// How many records consent withholds from a mapping's destination now.
    pub fn checkpoint_withheld(&self, mapping: i64) -> Result<u64> {
        on!(self, b => b.checkpoint_count(mapping, Count::Withheld))
    }

    /// The warehouse snapshot generation a mapping has caught up with (`None`: none).
    pub fn snapshot_generation(&self, mapping: i64) -> Result<Option<i64>> {
        on!(self, b => b.snapshot_generation(mapping))
    }

    /// Records (`Some`) or forgets (`None`) the snapshot generation a mapping caught up with.
    pub fn set_snapshot_generation(&self, mapping: i64, generation: Option<i64>) -> Result<()> {
        on!(self, b => b.set_snapshot_generation(mapping, generation, None))
    }

    /// [`set_snapshot_generation`](Self::set_snapshot_generation) under a lease (refused with
    /// [`StateError::Fenced`](crate::StateError::Fenced) as [`write_checkpoint_fenced`](Self::write_checkpoint_fenced)).
    pub fn set_snapshot_generation_fenced(&self, lease: &Lease, mapping: i64, generation: Option<i64>) -> Result<()> {
        on!(self, b => b.set_snapshot_generation(mapping, generation, Some(lease)))
    }

    /// Number of checkpoint entries of a mapping, by pending state name.
    pub fn checkpoint_counts(&self, mapping: i64) -> Result<Vec<(String, i64)>> {
        on!(self, b => b.checkpoint_counts(mapping))
    }
}

/// What [`StateStore::checkpoint_held`] and [`StateStore::checkpoint_withheld`] count.
#[derive(Clone, Copy)]
pub(crate) enum Count {
    /// Entries the destination holds.
    Held,
    /// Entries consent withholds.
    Withheld,
}

impl Count {
    /// The query (the same on both backends).
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Count::Held => "select count(*) from checkpoint where mapping = $1 and held is not null",
            Count::Withheld => "select count(*) from checkpoint where mapping = $1 and pending = 1",
        }
    }
}

/// The last write of each id, in the order of their first appearance (a batch that names an id
/// twice means its last write).
pub(crate) fn last_writes(writes: &[Write]) -> Vec<&Write> {
    let mut seen = std::collections::HashMap::with_capacity(writes.len());
    let mut out: Vec<&Write> = Vec::with_capacity(writes.len());
    for w in writes {
        let id = match w {
            Write::Put(e) => e.id.as_str(),
            Write::Remove(id) => id.as_str(),
        };
        match seen.get(id) {
            Some(&i) => out[i] = w,
            None => {
                seen.insert(id, out.len());
                out.push(w);
            }
        }
    }
    out
}

/// Entries by pending state name (the same SQL on both backends; SQLite reads `$1` as parameter 1).
pub(crate) const COUNTS_SQL: &str =
    "select case pending when 0 then 'settled' when 1 then 'withheld' when 2 then 'failed'
        when 3 then 'rejected' else 'gave_up' end, count(*)
    from checkpoint where mapping = $1 group by 1 order by 1";
