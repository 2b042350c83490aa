//! Sources, destinations, models (with preview, consent mappings and syncs), profiles and
//! usage. Credentials are never returned: they read `"<set>"`.

use super::{Actor, ApiError, ControlState, ErrorBody, Page};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_engine::plan::redact;
use sluice_state::StateStore;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A page of configuration objects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectPage {
    /// The objects (as in the workspace file; credentials read `"<set>"`).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    /// How many there are in all.
    pub total: usize,
    /// Skipped.
    pub offset: usize,
    /// Page size.
    pub limit: usize,
}

fn page(kind: &str, all: Vec<Value>, p: &Page) -> ObjectPage {
    let all: Vec<Value> = all.into_iter().map(|v| redact(kind, v)).collect();
    let (items, offset, limit) = p.window(&all);
    ObjectPage { items, total: all.len(), offset, limit }
}

/// A run report as `who` may read it: URLs in errors redacted for everyone; for members, the
/// response bodies of destinations (internal services may answer with anything) left out of
/// failure samples.
pub(crate) fn report_for(who: &Actor, mut report: Value) -> Value {
    let member = who.role == sluice_state::Role::Member;
    let clean = |v: &mut Value| {
        if let Value::String(t) = v {
            let mut text = sluice_core::redact_urls_in(t);
            if member && text.starts_with("HTTP ") {
                if let Some((status, _)) = text.split_once(": ") {
                    text = format!("{status} (response body shown to owners only)");
                }
            }
            *t = text;
        }
    };
    if let Some(e) = report.get_mut("error") {
        clean(e);
    }
    if let Some(Value::Array(ms)) = report.get_mut("mappings") {
        for m in ms {
            let Some(Value::Object(samples)) = m.get_mut("failure_samples") else { continue };
            for list in samples.values_mut() {
                if let Value::Array(list) = list {
                    list.iter_mut().filter_map(|x| x.get_mut("error")).for_each(&clean);
                }
            }
        }
    }
    report
}

fn to_values<T: Serialize>(items: &[T]) -> Vec<Value> {
    items.iter().map(|x| serde_json::to_value(x).expect("config serializes")).collect()
}

/// Lists warehouse and event sources.
#[utoipa::path(get, path = "/api/v1/sources", params(Page),
    responses((status = 400, body = ErrorBody), (status = 200, body = ObjectPage), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn sources(
    State(s): State<ControlState>,
    _a: Actor,
    super::ApiQuery(p): super::ApiQuery<Page>,
) -> Result<Json<ObjectPage>, ApiError> {
    p.check()?;
    Ok(Json(page("source", to_values(&s.current().sources), &p)))
}

/// Lists destinations.
#[utoipa::path(get, path = "/api/v1/destinations", params(Page),
    responses((status = 400, body = ErrorBody), (status = 200, body = ObjectPage), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn destinations(
    State(s): State<ControlState>,
    _a: Actor,
    super::ApiQuery(p): super::ApiQuery<Page>,
) -> Result<Json<ObjectPage>, ApiError> {
    p.check()?;
    Ok(Json(page("destination", to_values(&s.current().destinations), &p)))
}

/// Lists models with their consent mappings, mappings and schedules.
#[utoipa::path(get, path = "/api/v1/models", params(Page),
    responses((status = 400, body = ErrorBody), (status = 200, body = ObjectPage), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn models(
    State(s): State<ControlState>,
    _a: Actor,
    super::ApiQuery(p): super::ApiQuery<Page>,
) -> Result<Json<ObjectPage>, ApiError> {
    p.check()?;
    Ok(Json(page("model", to_values(&s.current().models), &p)))
}

fn unknown_model(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no model has the id `{id}`"), Some("id"))
}

/// One model.
#[utoipa::path(get, path = "/api/v1/models/{id}", params(("id" = String, Path, description = "Model id")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Object), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn model(
    State(s): State<ControlState>,
    _a: Actor,
    super::ApiPath(id): super::ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    model_json(&s, &id).map(Json)
}

/// The model `id` of the live workspace, with when `sluice serve` runs it next (null: manual).
fn model_json(s: &ControlState, id: &str) -> Result<Value, ApiError> {
    let ws = s.current();
    let m = ws.models.iter().find(|m| m.id == id).ok_or_else(|| unknown_model(id))?;
    let mut v = serde_json::to_value(m).expect("config serializes");
    let store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    let next = sluice_engine::scheduler::next_runs(&s.engine_workspace(), &store);
    v["next_run_at"] = next.get(id).map(|t| Value::String(t.to_rfc3339())).unwrap_or(Value::Null);
    Ok(v)
}

/// A model's columns and first 10 rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, column -> value.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
}

/// Runs the model and shows its first 10 rows.
#[utoipa::path(get, path = "/api/v1/models/{id}/preview", params(("id" = String, Path, description = "Model id")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Preview), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn preview(
    State(s): State<ControlState>,
    _a: Actor,
    super::ApiPath(id): super::ApiPath<String>,
) -> Result<Json<Preview>, ApiError> {
    /// Stops the preview's query on the warehouse when dropped armed: axum drops the handler's
    /// future when the client goes away, and the blocking task would otherwise run on.
    struct CancelOnDrop(Option<sluice_warehouse::Canceller>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            if let Some(c) = self.0.take() {
                // `cancel` blocks on the warehouse: never on the async runtime's threads
                std::thread::spawn(move || c.cancel());
            }
        }
    }
    let ws = s.engine_workspace();
    let canceller = sluice_warehouse::Canceller::new();
    let mut armed = CancelOnDrop(Some(canceller.clone()));
    let task = tokio::task::spawn_blocking(move || {
        let m = ws.model(&id).ok_or_else(|| unknown_model(&id))?;
        let wh_err = |e: sluice_warehouse::WarehouseError| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "warehouse", e.to_string(), Some("sql"))
        };
        let mut w = ws.warehouse(&m.source).map_err(wh_err)?;
        w.attach_canceller(&canceller);
        for warning in w.warnings() {
            tracing::warn!(source = %m.source, model = %m.id, %warning, "warehouse connection");
        }
        let p = w.preview(&m.sql, 10).map_err(wh_err)?;
        let rows = p
            .rows
            .into_iter()
            .map(|r| Value::Object(p.columns.iter().cloned().zip(r.into_iter().map(cut_cell)).collect()))
            .collect();
        Ok(Json(Preview { columns: p.columns, rows }))
    });
    // every warehouse, SQLite included: a preview that runs longer is stopped on the server
    let Ok(done) = tokio::time::timeout(PREVIEW_TIMEOUT, task).await else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "preview_timeout",
            format!("the model ran longer than {} s and was stopped", PREVIEW_TIMEOUT.as_secs()),
            Some("sql"),
        ));
    };
    armed.0 = None;
    done.map_err(ApiError::internal)?
}

/// Longest a preview may run (the PostgreSQL server enforces the same limit itself).
const PREVIEW_TIMEOUT: std::time::Duration = sluice_warehouse::postgres::DEFAULT_PREVIEW_TIMEOUT;

/// Longest text a preview shows of one value.
const PREVIEW_CELL_CHARS: usize = 1000;

/// A preview value, long text cut to [`PREVIEW_CELL_CHARS`] with its full length said.
fn cut_cell(v: Value) -> Value {
    match v {
        Value::String(s) if s.len() > PREVIEW_CELL_CHARS => {
            let head: String = s.chars().take(PREVIEW_CELL_CHARS).collect();
            Value::String(format!("{head}… [cut: {} bytes in all]", s.len()))
        }
        Value::String(s) => Value::String(s),
        other => {
            let text = other.to_string();
            if text.len() > PREVIEW_CELL_CHARS * 4 {
                Value::String(format!(
                    "{}… [cut: {} bytes in all]",
                    &text.chars().take(PREVIEW_CELL_CHARS).collect::<String>(),
                    text.len()
                ))
            } else {
                other
            }
        }
    }
}

/// A model's consent mappings: category id -> column.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentMappings {
    /// Category id -> column of the model.
    pub consent: BTreeMap<String, String>,
}

/// Sets a model's consent mappings (owners only: consent management). Columns are checked
/// against the warehouse.
#[utoipa::path(put, path = "/api/v1/models/{id}/consent", params(("id" = String, Path, description = "Model id"), super::whatif::DryRun),
    request_body = ConsentMappings,
    responses((status = 400, body = ErrorBody), (status = 200, body = Object, description = "the model; with dry_run=true: {plan, warnings, what_if, allowed, refused, errors}, nothing changed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_consent(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
    super::ApiQuery(dry): super::ApiQuery<super::whatif::DryRun>,
    super::ApiJson(body): super::ApiJson<ConsentMappings>,
) -> Result<Json<Value>, ApiError> {
    if dry.on() {
        return s.preview(actor, true, edit_consent(id.clone(), body.consent)).await;
    }
    actor.owner()?;
    let cs = s.clone();
    let key = id.clone();
    tokio::task::spawn_blocking(move || {
        // the change path checks the new mapping against the warehouse's real columns
        cs.change_now(&actor, |ws| {
            let m = ws.models.iter_mut().find(|m| m.id == key).ok_or_else(|| unknown_model(&key))?;
            m.consent = body.consent.clone();
            Ok(())
        })
    })
    .await
    .map_err(ApiError::internal)??;
    model_json(&s, &id).map(Json)
}

/// The edit `set_consent` makes to a workspace (the web UI previews the same edit).
pub(crate) fn edit_consent(
    key: String,
    consent: std::collections::BTreeMap<String, String>,
) -> impl Fn(&mut sluice_core::WorkspaceFile) -> Result<(), ApiError> + Send + 'static {
    move |ws| {
        let m = ws.models.iter_mut().find(|m| m.id == key).ok_or_else(|| unknown_model(&key))?;
        m.consent = consent.clone();
        Ok(())
    }
}

/// A started sync.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStarted {
    /// `started`.
    pub status: String,
    /// The model.
    pub model: String,
}

/// Starts a sync of every mapping of the model now (in the background; see the runs).
#[utoipa::path(post, path = "/api/v1/models/{id}/syncs", params(("id" = String, Path, description = "Model id")),
    responses((status = 400, body = ErrorBody), (status = 202, body = SyncStarted), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn start_sync(
    State(s): State<ControlState>,
    _a: Actor,
    super::ApiPath(id): super::ApiPath<String>,
) -> Result<(StatusCode, Json<SyncStarted>), ApiError> {
    let ws = s.engine_workspace();
    if ws.model(&id).is_none() {
        return Err(unknown_model(&id));
    }
    let (dir, model, progress) = ((*s.state).clone(), id.clone(), s.progress.clone());
    std::thread::spawn(move || {
        let report = |n: u64| {
            progress.lock().insert(model.clone(), n);
        };
        let r = StateStore::open_at(&dir)
            .map_err(sluice_engine::SyncError::from)
            .and_then(|mut st| sluice_engine::sync_model(&mut st, &ws, &model, &mut |n| report(n)));
        progress.lock().remove(&model);
        if let Err(e) = r {
            let error = sluice_core::redact_urls_in(&e.to_string());
            tracing::warn!(model = %model, error = %error, "sync started by the API failed");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(SyncStarted { status: "started".into(), model: id })))
}

/// Sync runs of a model, newest first, with their delivery overview.
#[utoipa::path(get, path = "/api/v1/models/{id}/syncs", params(("id" = String, Path, description = "Model id"), Page),
    responses((status = 400, body = ErrorBody), (status = 200, body = ObjectPage), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn syncs(
    State(s): State<ControlState>,
    a: Actor,
    super::ApiPath(id): super::ApiPath<String>,
    super::ApiQuery(p): super::ApiQuery<Page>,
) -> Result<Json<ObjectPage>, ApiError> {
    p.check()?;
    if !s.current().models.iter().any(|m| m.id == id) {
        return Err(unknown_model(&id));
    }
    let store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    let runs = store.runs(Some(&id), 1000).map_err(ApiError::internal)?;
    let all: Vec<Value> = runs
        .into_iter()
        .map(|r| r.report.unwrap_or_else(|| serde_json::json!({"run_id": r.id, "model": r.model, "status": r.status, "started_at": r.started_at})))
        .map(|r| report_for(&a, r))
        .collect();
    Ok(Json(page("run", all, &p)))
}

/// One sync run with its delivery overview.
#[utoipa::path(get, path = "/api/v1/syncs/{run_id}", params(("run_id" = i64, Path, description = "Run number")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Object), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn sync_run(
    State(s): State<ControlState>,
    a: Actor,
    super::ApiPath(run_id): super::ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    let run = store.runs(None, 100_000).map_err(ApiError::internal)?.into_iter().find(|r| r.id == run_id);
    match run {
        Some(r) => Ok(Json(report_for(
            &a,
            r.report.unwrap_or_else(|| serde_json::json!({"run_id": r.id, "status": r.status})),
        ))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no sync run {run_id}"), Some("run_id"))),
    }
}

/// Records synced per month and destination (consent-withheld records never count).
#[utoipa::path(get, path = "/api/v1/usage",
    responses((status = 400, body = ErrorBody), (status = 200, body = ObjectPage), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn usage(State(s): State<ControlState>, _a: Actor) -> Result<Json<ObjectPage>, ApiError> {
    let store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    let rows = store.usage().map_err(ApiError::internal)?;
    Ok(Json(page("usage", to_values(&rows), &Page { offset: None, limit: Some(500) })))
}

/// A profile: identifiers, traits, consent per category and the conflict flag.
#[utoipa::path(get, path = "/api/v1/profiles/{id}", params(("id" = String, Path, description = "A userId or anonymousId")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Object), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn profile(
    State(s): State<ControlState>,
    _a: Actor,
    super::ApiPath(id): super::ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let conn = crate::store::open(&s.state.dir).map_err(ApiError::internal)?;
    match crate::store::profile_of(&conn, &id).map_err(ApiError::internal)? {
        Some(p) => Ok(Json(crate::read::profile_json(&p))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no profile has the identifier `{id}`"),
            Some("id"),
        )),
    }
}
