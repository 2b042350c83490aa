//! One mapping during a sync: its checkpoint cursor, consent gate, batch and counts.

use super::cursor::Cursor;
use super::payload::Projections;
use crate::report::{FailureSample, MappingReport, MAX_SAMPLES};
use crate::telemetry::{emit, Event};
use serde_json::{Map, Value};
use sluice_core::consent::OpenReason;
use sluice_core::{parse_consent, Change, Gate, Verdict};
use sluice_destinations::{DeliveryError, Destination, Item};
use sluice_state::{CheckpointWrite, ConsentSignature, Entry, Pending, Proof, StateStore};
use sluice_warehouse::IdOrder;
use std::time::Instant;

/// Hash recorded for a rejected `deleted` item (the row is gone; nothing else identifies it).
const DELETED: u64 = 0;
/// Checkpoint writes are flushed in transactions of this size.
const WRITE_BATCH: usize = 4096;

/// Retry limits of the workspace.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Syncs a failing record is tried in.
    pub max_syncs: u32,
    /// Seconds after the first failure a record is still retried.
    pub max_age_secs: i64,
    /// Now, in unix seconds.
    pub now: i64,
    /// Most deletes a sync sends, as a fraction of the records the destination holds.
    pub max_delete_fraction: f64,
}

/// Below this many deletes the mass-delete guard never holds back.
const MASS_DELETE_MIN: u64 = 10;

/// What the checkpoint needs to know about an item in flight.
struct InFlight {
    key: String,
    hash: u64,
    prior: Option<Entry>,
    /// The proof of consent it goes out under (recorded when it is delivered).
    proof: Option<Proof>,
    /// A delete because consent was withdrawn (R13): on success the record stays in the
    /// checkpoint, not held and withheld; on failure it is retried on every sync, never given up.
    withdrawal: bool,
}

/// What a mapping run is given: its destination, consent gate and settings.
pub struct MappingSetup {
    /// The overview being filled in.
    pub report: MappingReport,
    /// The checkpoint's mapping id.
    pub mapping_id: i64,
    /// The consent check of (model, destination).
    pub gate: Gate,
    /// Consent stamped on items (category id, column index; `None`: "no"); empty unless the
    /// destination stamps consent ([`sluice_core::consent::stamp_columns`]).
    pub stamp: Vec<(String, Option<usize>)>,
    /// Index of this mapping's field projection in [`super::payload::Projections`].
    pub projection: usize,
    /// Changes sent.
    pub on: Vec<Change>,
    /// R13: what the destination is asked to do with a held record consent now withholds.
    pub on_withdrawal: sluice_core::OnWithdrawal,
    /// Where items go.
    pub sink: Box<dyn Destination>,
    /// Retry and delete limits.
    pub limits: Limits,
    /// The order checkpoint keys follow.
    pub order: IdOrder,
    /// Stops the mapping when the stored workspace changes what it may send.
    pub watch: std::rc::Rc<super::watch::Watch>,
    /// Record ids suppressed by privacy requests: withheld from every destination (SPEC §12).
    pub suppressed: std::rc::Rc<std::collections::HashSet<String>>,
    /// The model's lease: every checkpoint write is fenced by it.
    pub lease: std::rc::Rc<sluice_state::Lease>,
}

/// A mapping being synced.
pub struct MappingRun {
    pub(crate) setup: MappingSetup,
    cursor: Cursor,
    batch: Vec<Item>,
    in_flight: Vec<InFlight>,
    writes: Vec<CheckpointWrite>,
    gone: Vec<Entry>,
    /// Records the destination holds that are still in the model (for the mass-delete guard).
    held_present: u64,
    /// Set when the configuration changed under the run: nothing more is sent or checkpointed.
    stopped: bool,
    /// A sparse pass (docs/DIFF.md): rows come only for ids the warehouse said changed, so
    /// entries are looked up one by one and an id passed over is not gone (gone ids come
    /// explicitly, through [`MappingRun::gone`]).
    pub(crate) sparse: bool,
    /// In a sparse pass: withheld records whose id the model now returns twice (rejected, so
    /// not counted as withheld this run, as a full scan does not count them).
    withheld_rejected: u64,
    /// The run this is part of (for the proof of consent); set once the run is recorded.
    pub(crate) run_id: i64,
    /// Consent signature ids met so far: the required categories' values -> id.
    signatures: std::collections::HashMap<Vec<bool>, u16>,
}

impl MappingRun {
    /// A run of one mapping.
    pub fn new(setup: MappingSetup) -> Self {
        Self {
            cursor: Cursor::new(setup.mapping_id),
            setup,
            batch: Vec::new(),
            in_flight: Vec::new(),
            writes: Vec::new(),
            gone: Vec::new(),
            held_present: 0,
            stopped: false,
            sparse: false,
            withheld_rejected: 0,
            run_id: 0,
            signatures: std::collections::HashMap::new(),
        }
    }

    /// Stops the mapping: what is batched is not sent (its checkpoint entries stay as they
    /// were, so the next sync decides them under the new configuration), no delete is sent.
    fn stop(&mut self, store: &mut StateStore, why: String) -> sluice_state::Result<()> {
        tracing::warn!(destination = %self.setup.report.destination, reason = %why, "mapping stopped mid-run");
        self.stopped = true;
        self.batch.clear();
        self.in_flight.clear();
        self.gone.clear();
        self.setup.report.stopped = Some(why);
        self.setup.report.status = crate::report::MappingStatus::Stopped;
        self.write_out(store)
    }

    /// Writes the pending checkpoint writes under the model's lease (refused with `Fenced` once
    /// another worker took the model over).
    fn write_out(&mut self, store: &mut StateStore) -> sluice_state::Result<()> {
        let writes = std::mem::take(&mut self.writes);
        if writes.is_empty() {
            return Ok(());
        }
        store.write_checkpoint_fenced(&self.setup.lease, self.setup.mapping_id, &writes)
    }

    /// An id present in the model but rejected (duplicate): its checkpoint is left alone.
    pub fn skip(&mut self, store: &StateStore, key: &str) -> sluice_state::Result<()> {
        if self.stopped {
            return Ok(());
        }
        if self.sparse {
            let e = store.checkpoint_entry(self.setup.mapping_id, key)?;
            self.withheld_rejected += u64::from(e.is_some_and(|e| e.pending == Pending::Withheld));
            return Ok(());
        }
        if self.cursor.seek(store, key, &mut self.gone)?.is_some_and(|e| e.held.is_some()) {
            self.held_present += 1;
        }
        Ok(())
    }

    /// Whether the configuration changed under the run and the mapping stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// In a sparse pass: the warehouse says the record with checkpoint key `key` is gone from
    /// the model (a delete candidate, decided in [`MappingRun::finish`]).
    pub fn gone(&mut self, store: &StateStore, key: &str) -> sluice_state::Result<()> {
        if self.stopped {
            return Ok(());
        }
        if let Some(e) = store.checkpoint_entry(self.setup.mapping_id, key)? {
            self.gone.push(e);
        }
        Ok(())
    }

    /// One valid row: `key` is its checkpoint key (see [`IdOrder::key`]), `id` what is sent.
    pub fn row(
        &mut self,
        store: &mut StateStore,
        key: &str,
        id: &str,
        values: &[Value],
        raw: Option<&sluice_warehouse::RawRow>,
        payloads: &mut Projections,
    ) -> sluice_state::Result<()> {
        if self.stopped {
            return Ok(());
        }
        let entry = if self.sparse {
            store.checkpoint_entry(self.setup.mapping_id, key)?
        } else {
            self.cursor.seek(store, key, &mut self.gone)?
        };
        if entry.as_ref().is_some_and(|e| e.held.is_some()) {
            self.held_present += 1;
        }
        if !self.setup.suppressed.is_empty() && self.setup.suppressed.contains(id) {
            // a privacy request: never sent, not counted as usage, the checkpoint left as it is;
            // but a suppressed person whose consent was withdrawn still gets R13's delete (below)
            let held = entry.as_ref().is_some_and(|e| e.held.is_some());
            let withdrawn = matches!(self.setup.gate.decide(|c| parse_consent(&values[c])), Verdict::Withhold(_));
            if !(withdrawn && sluice_core::withdrawal::record_needs_delete(self.setup.on_withdrawal, true, held)) {
                self.setup.report.withheld_by_privacy_request += 1;
                return Ok(());
            }
        }
        if let Verdict::Withhold(refused) = self.setup.gate.decide(|c| parse_consent(&values[c])) {
            let cats: Vec<&str> = refused.iter().map(|i| self.setup.gate.required()[*i].category.as_str()).collect();
            emit(&mut self.setup.report, Event::Withheld { id, categories: &cats });
            let held = entry.as_ref().is_some_and(|e| e.held.is_some());
            if sluice_core::withdrawal::record_needs_delete(self.setup.on_withdrawal, true, held) {
                // R13: consent withdrawn from a record the destination holds: its delete call
                emit(&mut self.setup.report, Event::WithdrawalDelete { id });
                let item = withdrawal_item(id.to_string());
                let meta =
                    InFlight { key: key.to_string(), hash: DELETED, prior: entry, proof: None, withdrawal: true };
                return self.queue(store, item, meta);
            }
            if entry.as_ref().map(|e| e.pending) != Some(Pending::Withheld) {
                let (held, proof) = entry.map_or((None, None), |e| (e.held, e.proof));
                // the proof of a held record stays its delivery's; one not held keeps the refusal
                let proof = match held {
                    Some(_) => proof,
                    None => Some(Proof { run: self.run_id, signature: self.signature(store, values)? }),
                };
                self.put(Entry { id: key.to_string(), held, pending: Pending::Withheld, proof });
            }
            return self.flush_writes_if_full(store);
        }
        let data_hash = payloads.hash(self.setup.projection, values, raw);
        let consent: Option<Map<String, Value>> = (!self.setup.stamp.is_empty()).then(|| {
            self.setup
                .stamp
                .iter()
                .map(|(cat, c)| (cat.clone(), Value::Bool(c.is_some_and(|c| parse_consent(&values[c]).granted()))))
                .collect()
        });
        // what is sent is hashed: the fields, and the consent stamp where one is sent
        let hash = match &consent {
            None => data_hash,
            Some(c) => {
                let mut hasher = xxhash_rust::xxh3::Xxh3::new();
                hasher.update(&data_hash.to_le_bytes());
                hasher.update(&serde_json::to_vec(c).expect("json encodes"));
                hasher.digest()
            }
        };
        let pending = entry.as_ref().map(|e| e.pending).unwrap_or(Pending::None);
        let change = match entry.as_ref().and_then(|e| e.held) {
            None => Change::Added,
            Some(h) if h == hash => {
                self.setup.report.unchanged += 1;
                if pending != Pending::None {
                    let proof = entry.as_ref().and_then(|e| e.proof);
                    self.put(Entry { id: key.to_string(), held: Some(h), pending: Pending::None, proof });
                }
                return self.flush_writes_if_full(store);
            }
            Some(_) => Change::Updated,
        };
        if matches!(pending, Pending::Rejected { hash: h } | Pending::GaveUp { hash: h } if h == hash) {
            self.setup.report.skipped_rejected += 1;
            return Ok(());
        }
        if !self.setup.on.contains(&change) {
            return Ok(());
        }
        let data = payloads.encode(self.setup.projection, values, raw);
        let proof = Some(Proof { run: self.run_id, signature: self.signature(store, values)? });
        let item = Item { action: change, id: id.to_string(), data, consent, reason: None };
        self.queue(store, item, InFlight { key: key.to_string(), hash, prior: entry, proof, withdrawal: false })
    }

    /// The id of the consent signature `values` go out under: the gate's rule and each required
    /// (or, for a destination that stamps consent, stamped) category's value.
    fn signature(&mut self, store: &StateStore, values: &[Value]) -> sluice_state::Result<u16> {
        let granted = |c: Option<usize>| c.is_some_and(|c| parse_consent(&values[c]).granted());
        let (cats, bits): (Vec<&str>, Vec<bool>) = match &self.setup.gate {
            Gate::Check { required, .. } => required.iter().map(|r| (r.category.as_str(), granted(r.column))).unzip(),
            Gate::Open(_) => self.setup.stamp.iter().map(|(c, col)| (c.as_str(), granted(*col))).unzip(),
        };
        if let Some(id) = self.signatures.get(&bits) {
            return Ok(*id);
        }
        let rule = match &self.setup.gate {
            Gate::Check { policy: sluice_core::Policy::All, .. } => "R2: every required category consented (all)",
            Gate::Check { policy: sluice_core::Policy::Any, .. } => {
                "R2: at least one required category consented (any)"
            }
            Gate::Open(OpenReason::UnmappedDestination) => "R1: no category governs the destination",
            Gate::Open(OpenReason::UnmappedModel) => "R4: the model maps no consent column (not enforced)",
            Gate::Open(OpenReason::Stamps) => "R5: consent stamped on the event, enforced downstream",
        };
        let sig = ConsentSignature {
            rule: rule.to_string(),
            consent: cats.iter().zip(&bits).map(|(c, b)| (c.to_string(), *b)).collect(),
        };
        let id = store.consent_signature(self.setup.mapping_id, &sig)?;
        self.signatures.insert(bits, id);
        Ok(id)
    }

    fn queue(&mut self, store: &mut StateStore, item: Item, meta: InFlight) -> sluice_state::Result<()> {
        match item.action {
            Change::Added => self.setup.report.added += 1,
            Change::Updated => self.setup.report.updated += 1,
            Change::Deleted => self.setup.report.deleted += 1,
        }
        if matches!(meta.prior.as_ref().map(|e| e.pending), Some(Pending::Failed { .. })) {
            self.setup.report.retried += 1;
        }
        self.batch.push(item);
        self.in_flight.push(meta);
        if self.batch.len() >= self.setup.sink.batch_size() {
            self.flush(store)?;
        }
        Ok(())
    }

    fn put(&mut self, e: Entry) {
        self.writes.push(CheckpointWrite::Put(e));
    }

    fn flush_writes_if_full(&mut self, store: &mut StateStore) -> sluice_state::Result<()> {
        if self.writes.len() >= WRITE_BATCH {
            self.write_out(store)?;
        }
        Ok(())
    }

    /// Delivers the batch and records each item's outcome in the checkpoint.
    pub fn flush(&mut self, store: &mut StateStore) -> sluice_state::Result<()> {
        if self.stopped {
            return Ok(());
        }
        if let Some(why) = self.setup.watch.stop_reason(store, &self.setup.report.destination) {
            return self.stop(store, why);
        }
        if self.batch.is_empty() {
            return self.write_out(store);
        }
        let items = std::mem::take(&mut self.batch);
        let in_flight = std::mem::take(&mut self.in_flight);
        let t = Instant::now();
        let span =
            tracing::debug_span!("deliver_batch", destination = %self.setup.report.destination, items = items.len());
        let outcomes = span.in_scope(|| self.setup.sink.deliver(&items));
        self.setup.report.delivery_ms += t.elapsed().as_millis() as u64;
        let mut delivered = 0;
        for ((item, p), outcome) in items.into_iter().zip(in_flight).zip(outcomes) {
            let held = p.prior.as_ref().and_then(|e| e.held);
            match outcome {
                Ok(()) if p.withdrawal => {
                    // R13: not held any more; consent granted again re-sends it as `added`
                    delivered += 1;
                    self.put(Entry { id: p.key, held: None, pending: Pending::Withheld, proof: None });
                }
                Ok(()) if item.action == Change::Deleted => {
                    delivered += 1;
                    self.writes.push(CheckpointWrite::Remove(p.key));
                }
                Ok(()) => {
                    delivered += 1;
                    self.put(Entry { id: p.key, held: Some(p.hash), pending: Pending::None, proof: p.proof });
                }
                Err(e) => {
                    let pending = self.failed_pending(&p, &e);
                    let retryable = matches!(pending, Pending::Failed { .. });
                    emit(&mut self.setup.report, Event::Failed { id: &item.id, retryable, error: &e.message });
                    self.sample(&item, &e, retryable);
                    let proof = p.prior.as_ref().and_then(|e| e.proof);
                    self.put(Entry { id: p.key, held, pending, proof });
                }
            }
        }
        emit(&mut self.setup.report, Event::Delivered { count: delivered });
        self.write_out(store)
    }

    /// The checkpoint state of a failed item: retried later, or given up.
    fn failed_pending(&self, p: &InFlight, e: &DeliveryError) -> Pending {
        let (attempts, first) = match p.prior.as_ref().map(|e| e.pending) {
            Some(Pending::Failed { attempts, first_failed }) => (attempts.saturating_add(1), first_failed),
            _ => (1, self.setup.limits.now),
        };
        if p.withdrawal {
            // a privacy obligation: retried on every sync whatever the answer, never given up
            // (reported failed each run until it lands)
            return Pending::Failed { attempts, first_failed: first };
        }
        if !e.retryable {
            return Pending::Rejected { hash: p.hash };
        }
        if attempts >= self.setup.limits.max_syncs || self.setup.limits.now - first >= self.setup.limits.max_age_secs {
            Pending::GaveUp { hash: p.hash }
        } else {
            Pending::Failed { attempts, first_failed: first }
        }
    }

    fn sample(&mut self, item: &Item, e: &DeliveryError, retryable: bool) {
        let list = if retryable {
            &mut self.setup.report.failure_samples.retryable
        } else {
            &mut self.setup.report.failure_samples.permanent
        };
        if list.len() < MAX_SAMPLES {
            let error = if !retryable && e.retryable {
                format!("gave up after retries: {}", e.message)
            } else {
                e.message.clone()
            };
            list.push(FailureSample {
                id: item.id.clone(),
                action: item.action.as_str().into(),
                error,
                class: serde_json::to_value(e.class)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                payload: serde_json::to_value(item).unwrap_or_default(),
            });
        }
    }

    /// After a complete scan: the rest of the checkpoint is gone from the model; send deletes
    /// to where records are held, drop entries of records never held, deliver what is left.
    pub fn finish(&mut self, store: &mut StateStore) -> sluice_state::Result<()> {
        if self.stopped {
            // the scan was not followed to its end for this mapping: no record is "gone"
            return Ok(());
        }
        if self.sparse {
            // held records still in the model, for the mass-delete guard below (counted only
            // when something is gone: it reads every entry of the mapping)
            let gone_held = self.gone.iter().filter(|e| e.held.is_some()).count() as u64;
            if gone_held > 0 {
                self.held_present = store.checkpoint_held(self.setup.mapping_id)?.saturating_sub(gone_held);
            }
        } else {
            self.cursor.rest(store, &mut self.gone)?;
        }
        let deletable = |e: &Entry| {
            e.held.is_some()
                && !matches!(e.pending, Pending::Rejected { hash: DELETED } | Pending::GaveUp { hash: DELETED })
        };
        let deletes = self.gone.iter().filter(|e| deletable(e)).count() as u64;
        let held = self.held_present + self.gone.iter().filter(|e| e.held.is_some()).count() as u64;
        if self.setup.on.contains(&Change::Deleted)
            && deletes >= MASS_DELETE_MIN
            && deletes as f64 > self.setup.limits.max_delete_fraction * held as f64
        {
            // the mass-delete guard: keep every checkpoint entry, send nothing, say so
            self.setup.report.deletes_held_back = deletes;
            self.gone.clear();
            tracing::warn!(destination = %self.setup.report.destination, deletes, held, "mass delete held back");
        }
        for e in std::mem::take(&mut self.gone) {
            match (e.held, e.pending) {
                (None, _) => self.writes.push(CheckpointWrite::Remove(e.id)),
                (Some(_), Pending::Rejected { hash: DELETED } | Pending::GaveUp { hash: DELETED }) => {
                    self.setup.report.skipped_rejected += 1
                }
                (Some(_), _) if self.setup.on.contains(&Change::Deleted) => {
                    let item = Item {
                        action: Change::Deleted,
                        id: self.setup.order.id(&e.id),
                        data: sluice_destinations::raw(&Value::Object(Map::new())),
                        consent: None,
                        reason: None,
                    };
                    let meta =
                        InFlight { key: e.id.clone(), hash: DELETED, prior: Some(e), proof: None, withdrawal: false };
                    self.queue(store, item, meta)?;
                }
                (Some(_), _) => {}
            }
        }
        self.flush(store)?;
        if self.sparse {
            // every record consent keeps from the destination now, read or not this run (the
            // per-category breakdown covers the rows this pass read)
            let now = store.checkpoint_withheld(self.setup.mapping_id)?.saturating_sub(self.withheld_rejected);
            self.setup.report.withheld_by_consent = self.setup.report.withheld_by_consent.max(now);
        }
        self.setup.report.settle_status();
        Ok(())
    }

    /// After a failed scan: deliver what is batched, forget the delete candidates.
    pub fn abort(&mut self, store: &mut StateStore) -> sluice_state::Result<()> {
        self.gone.clear();
        self.flush(store)?;
        self.setup.report.settle_status();
        Ok(())
    }
}

/// The delete call of a record whose consent was withdrawn (R13): `deleted`, empty `data`,
/// reason `consent_withdrawn`.
fn withdrawal_item(id: String) -> Item {
    Item {
        action: Change::Deleted,
        id,
        data: sluice_destinations::raw(&Value::Object(Map::new())),
        consent: None,
        reason: Some(sluice_destinations::DeleteReason::ConsentWithdrawn),
    }
}
