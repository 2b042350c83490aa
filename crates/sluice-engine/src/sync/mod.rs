//! Syncing a model: one sorted extraction feeds every mapping of the model.

mod cursor;
pub mod lease;
mod mapping;
mod payload;
mod rows;
mod sparse;
mod watch;

use crate::report::{MappingReport, MappingStatus, RunReport, RunStatus, MAX_SAMPLES};
use crate::telemetry::FILTERED_BY_END_USER_CONSENT;
use crate::workspace::{model_column_errors, Workspace};
use mapping::{Limits, MappingRun, MappingSetup};
use payload::Projections;
use rows::Rows;
use sluice_core::{ConfigErrors, Gate, ModelConfig};
use sluice_destinations::BuildContext;
use sluice_state::{Lease, StateError, StateStore};
use sluice_warehouse::{resolve_column, IdOrder, Row, ScanNeeds, WarehouseError};
use std::time::Instant;

/// Why a sync could not run.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No model has this id.
    #[error("unknown model `{0}` (models: {1})")]
    UnknownModel(String, String),
    /// The model's configuration does not match its columns.
    #[error("{0}")]
    Config(ConfigErrors),
    /// The warehouse failed before any row was read.
    #[error("model `{model}`: {source}")]
    Warehouse {
        /// Model id.
        model: String,
        /// The warehouse error.
        source: WarehouseError,
    },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Another sync of the model is running (in this or another process).
    #[error("model `{0}` is already syncing (another `sluice sync` or the scheduler); try again when it ends")]
    Busy(String),
    /// Another worker holds the model's lease (it is syncing the model now).
    #[error("model `{model}` is being synced by worker `{worker}` (it holds the model's lease until {until}); try again when it ends")]
    Leased {
        /// Model id.
        model: String,
        /// The worker holding the lease (host/pid).
        worker: String,
        /// When its lease ends unless renewed (RFC 3339).
        until: String,
    },
    /// This worker lost the model's lease mid-run (it paused or lost the state database past
    /// the lease's time to live, and another worker took the model over): the run stopped, its
    /// later writes were refused, and it shows as `interrupted`.
    #[error("model `{model}`: this worker's lease (token {token}) expired or was taken over mid-run; the run stopped and is interrupted (the worker holding the lease resumes from the checkpoint)")]
    LeaseLost {
        /// Model id.
        model: String,
        /// The token of the lost lease.
        token: i64,
    },
    /// A setting of the sync is wrong (the message names it).
    #[error("{0}")]
    Settings(String),
    /// The lock file could not be used.
    #[error("lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Cancels a warehouse's work once a deadline passes, unless dropped first (the sync ended).
pub(crate) struct Watchdog {
    _done: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    pub(crate) fn start(warehouse: &mut dyn sluice_warehouse::Warehouse, deadline: std::time::Duration) -> Self {
        let canceller = sluice_warehouse::Canceller::new();
        warehouse.attach_canceller(&canceller);
        let (done, wait) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(deadline) {
                tracing::error!(
                    secs = deadline.as_secs(),
                    "the model's scan ran past its deadline (statement_timeout_secs) and is interrupted"
                );
                canceller.cancel();
            }
        });
        Self { _done: done }
    }
}

/// Holds the model's lock file for the duration of a sync; the OS releases it if the process dies.
fn lock_file(store: &StateStore, model: &str) -> Result<fd_lock::RwLock<std::fs::File>, SyncError> {
    let dir = store.dir().join("locks");
    let path = dir.join(format!("{}.lock", model.replace(['/', '\\', '.'], "_")));
    let io = |source| SyncError::Lock { path: path.display().to_string(), source };
    sluice_state::files::private_dir(&dir).map_err(io)?;
    let mut open = std::fs::OpenOptions::new();
    open.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let f = open.open(&path).map_err(io)?;
    sluice_state::files::tighten(&path).map_err(io)?;
    Ok(fd_lock::RwLock::new(f))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Words for the consent rule that governs a gate.
fn rule_text(gate: &Gate) -> String {
    use sluice_core::consent::OpenReason::*;
    match gate {
        Gate::Open(UnmappedDestination) => "R1: no consent category maps this destination; every record goes".into(),
        Gate::Open(UnmappedModel) => {
            "R4: the model maps no consent column; NOT enforced (set unmapped_models: block to fail closed)".into()
        }
        Gate::Open(Stamps) => "R5: connections destination; consent stamped on events, enforced downstream".into(),
        Gate::Check { policy, required } => {
            let cats: Vec<String> = required
                .iter()
                .map(|r| {
                    if r.column.is_some() {
                        r.category.clone()
                    } else {
                        format!("{} (no column: false, R3)", r.category)
                    }
                })
                .collect();
            let word = match policy {
                sluice_core::Policy::All => "all of",
                sluice_core::Policy::Any => "any of",
            };
            format!("R2: needs consent to {word} {}", cats.join(", "))
        }
    }
}

/// Rows per chunk handed from the scan thread to the diff.
const SCAN_CHUNK: usize = 1024;
/// Chunks decoded ahead of the diff (bounds memory).
const SCAN_CHUNKS_IN_FLIGHT: usize = 4;

struct Mappings {
    runs: Vec<MappingRun>,
    payloads: Projections,
    disabled: Vec<MappingReport>,
    /// Ids rejected as duplicated in this run (a sparse pass keeps them readable, see
    /// [`sluice_warehouse::diff::DUPLICATED`]).
    duplicated: std::collections::HashSet<String>,
}

fn prepare(
    store: &mut StateStore,
    ws: &Workspace,
    model: &ModelConfig,
    cols: &[String],
    order: IdOrder,
    held: &lease::Held,
) -> Result<Mappings, SyncError> {
    let column_of = |c: &str| resolve_column(cols, c).ok();
    let settings = &ws.file.workspace;
    let limits = Limits {
        max_syncs: settings.retry_max_syncs.max(1),
        max_age_secs: i64::from(settings.retry_max_days) * 86_400,
        now: chrono::Utc::now().timestamp(),
        max_delete_fraction: settings.max_delete_fraction,
    };
    let mut out =
        Mappings { runs: vec![], payloads: Projections::new(), disabled: vec![], duplicated: Default::default() };
    let watch = std::rc::Rc::new(watch::Watch::new(store, &ws.file, &model.id).with_lease_lost(held.lost.clone()));
    let lease = std::rc::Rc::new(held.lease.clone());
    let suppressed = std::rc::Rc::new(store.suppressed_ids()?);
    for mp in &model.mappings {
        let dest = ws.file.destinations.iter().find(|d| d.id == mp.destination).expect("validated");
        let gate = Gate::build(&ws.file, &sluice_destinations::REGISTRY, model, &dest.id, &column_of);
        let report = MappingReport {
            destination: dest.id.clone(),
            destination_name: dest.display_name().to_string(),
            discard_code: FILTERED_BY_END_USER_CONSENT.into(),
            required_categories: gate.required().iter().map(|r| r.category.clone()).collect(),
            consent_rule: rule_text(&gate),
            ..Default::default()
        };
        if !dest.enabled {
            out.disabled.push(MappingReport { status: MappingStatus::Disabled, ..report });
            continue;
        }
        let whole = mp.fields.is_empty();
        let fields: Vec<(String, usize)> = if whole {
            cols.iter().cloned().enumerate().map(|(i, c)| (c, i)).collect()
        } else {
            mp.fields.iter().filter_map(|(f, c)| column_of(c).map(|i| (f.clone(), i))).collect()
        };
        let mut on = mp.on.clone();
        // a change the destination has no call for (e.g. `deleted` on the Tracking API) is not sent
        if let Some(k) = sluice_destinations::registry::info(&dest.kind) {
            on.retain(|c| k.changes.contains(c));
        }
        let stamp = if sluice_core::consent::stamps_consent(&ws.file, &sluice_destinations::REGISTRY, &dest.id) {
            sluice_core::consent::stamp_columns(&ws.file, model)
                .into_iter()
                .map(|(cat, col)| (cat.to_string(), col.and_then(&column_of)))
                .collect()
        } else {
            vec![]
        };
        let ctx = BuildContext { base_dir: ws.base_dir.clone(), mapping_key: format!("{}/{}", model.id, dest.id) };
        let sink = sluice_destinations::build(dest, &ctx).map_err(|e| {
            SyncError::Config(ConfigErrors(vec![sluice_core::ConfigError::new(
                format!("destinations ({}).settings.{}", dest.id, e.at),
                e.message,
            )]))
        })?;
        let mapping_id = store.mapping_id(&model.id, &dest.id)?;
        follow_id_order(store, mapping_id, order, &held.lease)?;
        let projection = out.payloads.add(fields, whole);
        out.runs.push(MappingRun::new(MappingSetup {
            report,
            mapping_id,
            gate,
            stamp,
            projection,
            on,
            on_withdrawal: mp.on_withdrawal,
            sink,
            limits,
            order,
            watch: watch.clone(),
            suppressed: suppressed.clone(),
            lease: lease.clone(),
        }));
    }
    Ok(out)
}

/// Syncs every mapping of `model_id` once. `progress` is called with the rows read so far.
///
/// Returns the run's overview; a run that stopped early (SQL failed mid-way) has status
/// `error` and its `error` set: what was delivered before is checkpointed, nothing is lost.
///
/// Then evaluates the model's alerts (docs/PRIVACY.md "Alerts"): a run that could not even
/// start counts as a failed sync; nothing about alerts can fail the sync.
pub fn sync_model(
    store: &mut StateStore,
    ws: &Workspace,
    model_id: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<RunReport, SyncError> {
    let r = run_model(store, ws, model_id, progress).map_err(|e| match e {
        SyncError::State(StateError::Fenced { model, token }) => SyncError::LeaseLost { model, token },
        e => e,
    });
    match &r {
        Ok(report) => crate::alerts::after_run(store, &ws.file, report),
        Err(
            SyncError::Busy(_)
            | SyncError::UnknownModel(..)
            | SyncError::Lock { .. }
            | SyncError::Leased { .. }
            | SyncError::LeaseLost { .. }
            | SyncError::Settings(_),
        ) => {}
        Err(_) => crate::alerts::after_failed_start(store, &ws.file, model_id),
    }
    r
}

fn run_model(
    store: &mut StateStore,
    ws: &Workspace,
    model_id: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<RunReport, SyncError> {
    let started = Instant::now();
    let _span = tracing::info_span!("sync", model = %model_id).entered();
    let model = ws.model(model_id).ok_or_else(|| {
        let ids: Vec<&str> = ws.file.models.iter().map(|m| m.id.as_str()).collect();
        SyncError::UnknownModel(model_id.to_string(), ids.join(", "))
    })?;
    // never two syncs of the same model (and so of its mappings) at once
    let mut lock = lock_file(store, &model.id)?;
    let _guard = match lock.try_write() {
        Ok(g) => g,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Err(SyncError::Busy(model.id.clone())),
        Err(source) => return Err(SyncError::Lock { path: "locks".into(), source }),
    };
    // ... nor on two workers sharing the state: the model's lease, renewed while the run lasts,
    // fences every write of the run (released when `held` drops)
    let held = lease::take(store, &model.id, true)?;
    let wh_err = |source| SyncError::Warehouse { model: model.id.clone(), source };
    let mut warehouse = ws.warehouse(&model.source).map_err(wh_err)?;
    // a model that never ends on a warehouse without its own statement timeout (an SQLite
    // recursive CTE) is interrupted: nothing else would stop it
    let _watchdog = warehouse.scan_deadline().map(|d| Watchdog::start(&mut *warehouse, d));
    let cols = warehouse.columns(&model.sql).map_err(wh_err)?;
    let errs = model_column_errors(&format!("models ({})", model.id), model, &cols);
    if !errs.is_empty() {
        return Err(SyncError::Config(ConfigErrors(errs)));
    }
    let id_col = cols[resolve_column(&cols, &model.unique_id).expect("checked")].clone();
    let consent_cols: Vec<(String, usize)> =
        model.consent.iter().filter_map(|(cat, c)| resolve_column(&cols, c).ok().map(|i| (cat.clone(), i))).collect();

    let mut report = RunReport { model: model.id.clone(), started_at: now_rfc3339(), ..Default::default() };
    for w in warehouse.warnings() {
        tracing::warn!(model = %model.id, source = %model.source, "{w}");
        report.warnings.push(format!("source `{}`: {w}", model.source));
    }
    if model.consent.is_empty() && !ws.file.consent_categories.is_empty() {
        let w = ws.warnings.iter().find(|w| w.contains(&format!("model `{}`", model.id))).cloned();
        if let Some(w) = w {
            tracing::warn!(model = %model.id, "{w}");
            report.warnings.push(w);
        }
    }
    // how long each phase took, for the log line at the end (docs/BENCHMARKS.md reads it)
    let phase = std::time::Instant::now();
    let order = warehouse.id_order(&model.sql, &id_col).map_err(wh_err)?;
    let mut maps = prepare(store, ws, model, &cols, order, &held)?;
    let pass = match sparse::configured(ws, model) {
        Some(snapshot) => sparse::choose(store, &mut *warehouse, snapshot, ws, model, (&id_col, order), &maps)?,
        None => sparse::Pass::Local,
    };
    let plan_ms = phase.elapsed().as_millis() as u64;
    report.run_id = store.start_run_fenced(&held.lease, &report.started_at)?;
    maps.runs.iter_mut().for_each(|m| m.run_id = report.run_id);

    // a warehouse that can hand over raw rows decodes only the columns consent and explicit
    // field mappings read; whole rows are hashed as bytes and decoded only when sent
    let needs = if warehouse.raw_rows() && maps.payloads.any_whole() {
        let mut typed: Vec<usize> = consent_cols.iter().map(|(_, c)| *c).collect();
        for mp in &model.mappings {
            typed.extend(mp.fields.values().filter_map(|c| resolve_column(&cols, c).ok()));
        }
        typed.sort_unstable();
        typed.dedup();
        ScanNeeds { typed: Some(typed), raw: true, only_ids: None }
    } else {
        ScanNeeds::default()
    };
    let needs = match &pass {
        sparse::Pass::Sparse { items, .. } => {
            report.diff_pass = Some("sparse".into());
            maps.runs.iter_mut().for_each(|m| m.sparse = true);
            let ids = items.iter().filter_map(|i| match i {
                sluice_warehouse::diff::DiffItem::Upsert { id, .. } => Some(id.clone()),
                _ => None,
            });
            ScanNeeds { only_ids: Some(ids.collect()), ..needs }
        }
        sparse::Pass::Full { .. } => {
            report.diff_pass = Some("full".into());
            needs
        }
        sparse::Pass::Local => needs,
    };
    // extraction runs on its own thread, decoding ahead of the diff through a bounded channel
    let (scan, consumed) = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Row>>(SCAN_CHUNKS_IN_FLIGHT);
        let (sql, id_col) = (&model.sql, &id_col);
        let warehouse = &mut warehouse;
        let producer = s.spawn(move || {
            let mut chunk = Vec::with_capacity(SCAN_CHUNK);
            let r = warehouse.scan(sql, id_col, order, &needs, &mut |row| {
                chunk.push(row);
                if chunk.len() == SCAN_CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(SCAN_CHUNK));
                    tx.send(full).map_err(|_| "the sync stopped reading rows".to_string())?;
                }
                Ok(())
            });
            if r.is_ok() && !chunk.is_empty() {
                let _ = tx.send(chunk);
            }
            r
        });
        let mut rows = Rows::new(store, &mut report, &mut maps, &consent_cols, order);
        let mut consumed = Ok(());
        'chunks: for chunk in rx {
            for row in chunk {
                if let Err(e) = rows.push(row) {
                    consumed = Err(e);
                    break 'chunks;
                }
            }
            progress(rows.report.extracted);
        }
        let scan = producer.join().expect("the scan thread does not panic");
        if scan.is_ok() && consumed.is_ok() {
            consumed = rows.finish();
        }
        (scan, consumed)
    });
    progress(report.extracted);
    let scan_ms = phase.elapsed().as_millis() as u64 - plan_ms;
    consumed?;
    let completed = scan.is_ok();
    match scan {
        Ok(()) => {
            if let sparse::Pass::Sparse { items, .. } = &pass {
                // rows with a NULL id are counted as rejected, as a full scan counts them
                for _ in items.iter().filter(|i| matches!(i, sluice_warehouse::diff::DiffItem::NullId)) {
                    report.extracted += 1;
                    reject(&mut report, "null_id", "NULL", 1);
                }
                for id in items.iter().filter_map(|i| match i {
                    sluice_warehouse::diff::DiffItem::Gone(id) => Some(id),
                    _ => None,
                }) {
                    let Some(key) = order.key(id) else { continue };
                    for m in &mut maps.runs {
                        m.gone(store, &key)?;
                    }
                }
            }
            for m in &mut maps.runs {
                m.finish(store)?;
            }
        }
        Err(e) => {
            tracing::error!(model = %model.id, error = %e, "extraction failed; deletes are not sent this run");
            report.error = Some(e.to_string());
            for m in &mut maps.runs {
                m.abort(store)?;
            }
        }
    }

    let finish_ms = phase.elapsed().as_millis() as u64 - plan_ms - scan_ms;
    if let Some(w) = sparse::after(store, &mut *warehouse, &pass, &maps, completed)? {
        tracing::warn!(model = %model.id, "{w}");
        report.warnings.push(w);
    }
    let snapshot_ms = phase.elapsed().as_millis() as u64 - plan_ms - scan_ms - finish_ms;
    tracing::info!(model = %model.id, plan_ms, scan_ms, finish_ms, snapshot_ms, pass = report.diff_pass.as_deref().unwrap_or("local"),
                   "sync phases (plan: choosing the pass and the warehouse diff; scan: reading, diffing and delivering; finish: deletes and checkpoint; snapshot: moving the warehouse snapshot)");
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let mut mappings = Vec::new();
    for m in maps.runs {
        let mut r = m.setup.report;
        r.extracted = report.extracted;
        r.rejected = report.rejected;
        // R11: consent-withheld records are never metered
        store.add_usage(&month, &r.destination, (r.delivered + r.failed) as i64)?;
        mappings.push(r);
    }
    mappings.extend(maps.disabled.into_iter().map(|mut r| {
        r.extracted = report.extracted;
        r.rejected = report.rejected;
        r
    }));
    let order = |d: &str| model.mappings.iter().position(|m| m.destination == d);
    mappings.sort_by_key(|r| order(&r.destination));
    for m in mappings.iter().filter(|m| m.deletes_held_back > 0) {
        report.warnings.push(format!(
            "{} deletes to `{}` held back: more than {:.0}% of what it holds would be deleted; check the model, \
             or raise workspace.max_delete_fraction to let them through",
            m.deletes_held_back,
            m.destination,
            ws.file.workspace.max_delete_fraction * 100.0
        ));
    }
    report.mappings = mappings;
    report.status = if report.error.is_some() {
        RunStatus::Error
    } else if report.mappings.iter().any(|m| m.status == MappingStatus::Failed) {
        RunStatus::Failed
    } else if report.mappings.iter().any(|m| matches!(m.status, MappingStatus::Partial | MappingStatus::Stopped)) {
        RunStatus::Partial
    } else {
        RunStatus::Ok
    };
    report.finished_at = now_rfc3339();
    report.duration_ms = started.elapsed().as_millis() as u64;
    let json = serde_json::to_value(&report).expect("report serializes");
    store.finish_run_fenced(&held.lease, report.run_id, &report.finished_at, report.status, &json)?;
    crate::metrics::record_run(&report);
    tracing::info!(model = %model.id, run = report.run_id, status = %report.status, extracted = report.extracted,
                   duration_ms = report.duration_ms, "sync finished");
    Ok(report)
}

/// Keeps a mapping's checkpoint keys in the order the warehouse scans ids in; re-keys it when
/// that order changed (the id column changed type).
fn follow_id_order(store: &mut StateStore, mapping: i64, order: IdOrder, lease: &Lease) -> Result<(), StateError> {
    let stored = store.mapping_id_order(mapping)?.and_then(|s| IdOrder::parse(&s));
    match stored {
        Some(old) if old != order => {
            let dropped =
                store.rekey_checkpoint_fenced(lease, mapping, &|k| order.key(&old.id(k)).map(|c| c.into_owned()))?;
            tracing::warn!(
                mapping,
                from = old.as_str(),
                to = order.as_str(),
                dropped,
                "id order changed; checkpoint re-keyed"
            );
        }
        Some(_) => return Ok(()),
        None => {}
    }
    store.set_mapping_id_order(mapping, order.as_str())
}

fn reject(report: &mut RunReport, reason: &str, id: &str, n: u64) {
    report.rejected += n;
    *report.rejected_by_reason.entry(reason.into()).or_default() += n;
    let samples = report.rejected_samples.entry(reason.into()).or_default();
    if samples.len() < MAX_SAMPLES {
        samples.push(id.to_string());
    }
}
