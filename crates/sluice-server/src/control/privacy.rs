//! `/api/v1/regulations`: privacy requests (SPEC §12), modelled on Segment's Public API
//! regulations. Owners create them (members read); every request is audited; a suppression
//! reaches the running router at once (and a request made by the CLI within a second, see
//! [`crate::privacy`]); deletes run in the background with their status per destination.

use super::{Actor, ApiError, ApiJson, ApiPath, ApiQuery, ControlState, ErrorBody, Page};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sluice_state::{privacy, NewRegulation, Regulation, RegulationType, StateStore};
use utoipa::ToSchema;

/// A privacy request to make (Segment's `CreateCloudSourceRegulation` body).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewRegulationBody {
    /// `SUPPRESS_ONLY`, `UNSUPPRESS`, `SUPPRESS_WITH_DELETE` or `DELETE_ONLY`.
    #[schema(pattern = "^(SUPPRESS_ONLY|UNSUPPRESS|SUPPRESS_WITH_DELETE|DELETE_ONLY)$")]
    pub regulation_type: String,
    /// `USER_ID` or `ANONYMOUS_ID` (an id is matched as either).
    #[schema(pattern = "^(USER_ID|ANONYMOUS_ID)$")]
    pub subject_type: String,
    /// The ids: 1–1000, each 1–512 characters without control characters.
    #[schema(schema_with = subject_ids_schema)]
    pub subject_ids: Vec<String>,
}

/// The documented bounds of `subjectIds` (what [`privacy::check_subject_ids`] enforces).
fn subject_ids_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let id = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .min_length(Some(1))
        .max_length(Some(privacy::MAX_SUBJECT_ID_CHARS))
        .pattern(Some(r"^[^\x00-\x1f\x7f-\x9f]+$"));
    ArrayBuilder::new()
        .items(id)
        .min_items(Some(1))
        .max_items(Some(privacy::MAX_SUBJECT_IDS))
        .description(Some("The ids: 1–1000, each 1–512 characters without control characters."))
        .build()
}

/// The id of a created request.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    /// Its id, for `GET /api/v1/regulations/{id}`.
    #[serde(rename = "regulateId")]
    pub regulate_id: String,
    /// The request with its first statuses.
    pub regulation: Regulation,
}

/// The answer to a created request.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedBody {
    /// The request.
    pub data: Created,
}

/// Requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegulationList {
    /// The requests.
    pub regulations: Vec<Regulation>,
}

/// The answer to a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListBody {
    /// The page.
    pub data: RegulationList,
}

/// One request.
#[derive(Debug, Serialize, ToSchema)]
pub struct One {
    /// The request with its status overall and per destination.
    pub regulation: Regulation,
}

/// The answer to a get.
#[derive(Debug, Serialize, ToSchema)]
pub struct OneBody {
    /// The request.
    pub data: One,
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message, Some(field))
}

/// Checks and stores a request made by `created_by` (`token:NAME`, `ui:NAME`, `cli:USER`): the
/// one path of the API, the web UI and the CLI. The ids' profiles in the event log are looked
/// up so identifiers joined to them are suppressed (and deleted from streaming destinations)
/// too.
pub fn submit(
    state: &sluice_state::StateLocation,
    ws: &sluice_core::WorkspaceFile,
    body: &NewRegulationBody,
    created_by: String,
    bus: Option<&crate::deployment::BusReads>,
) -> Result<Regulation, ApiError> {
    let kind = RegulationType::parse(&body.regulation_type).ok_or_else(|| {
        bad("regulationType", format!("`regulationType` must be one of {}", RegulationType::ALL.join(", ")))
    })?;
    if !matches!(body.subject_type.as_str(), "USER_ID" | "ANONYMOUS_ID") {
        return Err(bad("subjectType", "`subjectType` must be USER_ID or ANONYMOUS_ID"));
    }
    let subject_ids = privacy::check_subject_ids(&body.subject_ids).map_err(|e| {
        let status = if e.field == "subjectIds" && body.subject_ids.len() > privacy::MAX_SUBJECT_IDS {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, "invalid_body", format!("`{}` {}", e.field, e.message), Some(&e.field))
    })?;
    let id = privacy::new_regulation_id();
    let mut destinations = sluice_engine::privacy::plan(ws, kind);
    let targets: Vec<String> =
        sluice_engine::privacy::streaming_targets(ws, &destinations).into_iter().map(String::from).collect();
    if let Some(bus) = bus {
        // a deployment: the profiles are shared in PostgreSQL, the delete goes on the bus, one
        // message per destination, after what was routed to it so far
        let mut c = sluice_stream::bus::pg::open(&bus.state, "sluice-api").map_err(ApiError::internal)?;
        let profile = sluice_stream::bus::pg::profile_identifiers(&mut c, &subject_ids).map_err(ApiError::internal)?;
        if !profile.is_empty() {
            let mut req = sluice_stream::person_delete::PersonDelete::new(
                profile.user_ids.clone(),
                profile.anonymous_ids.clone(),
                sluice_destinations::DeleteReason::PrivacyRequest,
            );
            req.origin = id.clone();
            for t in &targets {
                let seq = bus.bus.publish_delete(t, &req, &id).map_err(ApiError::internal)?;
                for d in destinations.iter_mut().filter(|d| d.id == *t) {
                    d.stream_seq = i64::try_from(seq).ok();
                }
            }
        }
        return store_regulation(state, id, kind, body, destinations, subject_ids, profile, created_by);
    }
    let mut conn = sluice_stream::store::open(&state.dir).map_err(ApiError::internal)?;
    let profile = sluice_stream::store::profile_identifiers(&conn, &subject_ids).map_err(ApiError::internal)?;
    // streaming destinations: R13's durable person-delete, queued before the request is stored
    // (a crash in between leaves a delete the owner asked for, never a request without it)
    if !profile.is_empty() && !targets.is_empty() {
        let mut req = sluice_stream::person_delete::PersonDelete::new(
            profile.user_ids.clone(),
            profile.anonymous_ids.clone(),
            sluice_destinations::DeleteReason::PrivacyRequest,
        );
        req.origin = id.clone();
        let tx = conn.transaction().map_err(ApiError::internal)?;
        let now = sluice_stream::rfc3339(chrono::Utc::now());
        let names: Vec<&str> = targets.iter().map(String::as_str).collect();
        let seq = sluice_stream::person_delete::enqueue(&tx, &names, &req, &now).map_err(ApiError::internal)?;
        tx.commit().map_err(ApiError::internal)?;
        for d in destinations.iter_mut().filter(|d| targets.contains(&d.id)) {
            d.stream_seq = seq;
        }
    }
    store_regulation(state, id, kind, body, destinations, subject_ids, profile, created_by)
}

#[allow(clippy::too_many_arguments)]
fn store_regulation(
    state: &sluice_state::StateLocation,
    id: String,
    kind: RegulationType,
    body: &NewRegulationBody,
    destinations: Vec<sluice_state::PlannedDelete>,
    subject_ids: Vec<String>,
    profile: sluice_stream::store::ProfileIds,
    created_by: String,
) -> Result<Regulation, ApiError> {
    let mut store = StateStore::open_at(state).map_err(ApiError::internal)?;
    let new = NewRegulation {
        id,
        kind,
        subject_type: body.subject_type.clone(),
        destinations,
        subject_ids,
        joined_ids: profile.all(),
        created_by,
    };
    store.create_regulation(&new).map_err(ApiError::internal)
}

/// Refuses members: privacy requests change what flows and delete data.
pub(crate) fn owners_only(actor: &Actor) -> Result<(), ApiError> {
    if actor.role != sluice_state::Role::Owner {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only owners may make privacy requests (suppress, unsuppress, delete); members have read-only access",
            None,
        ));
    }
    Ok(())
}

impl ControlState {
    /// [`submit`] as `actor`, then the running router drops the suppressed ids' events at once.
    pub(crate) async fn regulate(&self, actor: Actor, body: NewRegulationBody) -> Result<Regulation, ApiError> {
        owners_only(&actor)?;
        let s = self.clone();
        tokio::task::spawn_blocking(move || {
            let reg = submit(&s.state, &s.current(), &body, format!("token:{}", actor.name), s.bus.as_deref())?;
            let store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
            s.suppressed.refresh(&store).map_err(ApiError::internal)?;
            Ok(reg)
        })
        .await
        .map_err(ApiError::internal)?
    }
}

/// Makes a privacy request (owners only). Suppressions apply at once; deletes run in the
/// background: poll `GET /api/v1/regulations/{id}` for each destination's status.
#[utoipa::path(post, path = "/api/v1/regulations", request_body = NewRegulationBody,
    responses((status = 201, body = CreatedBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<ControlState>,
    actor: Actor,
    ApiJson(body): ApiJson<NewRegulationBody>,
) -> Result<(StatusCode, Json<CreatedBody>), ApiError> {
    let regulation = s.regulate(actor, body).await?;
    Ok((StatusCode::CREATED, Json(CreatedBody { data: Created { regulate_id: regulation.id.clone(), regulation } })))
}

/// Privacy requests, newest first, with their status overall and per destination (owners and
/// members).
#[utoipa::path(get, path = "/api/v1/regulations", params(Page),
    responses((status = 200, body = ListBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<ControlState>,
    _actor: Actor,
    ApiQuery(p): ApiQuery<Page>,
) -> Result<Json<ListBody>, ApiError> {
    p.check()?;
    let store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    let all = store.regulations(p.limit.unwrap_or(100) + p.offset.unwrap_or(0)).map_err(ApiError::internal)?;
    let (regulations, _, _) = p.window(&all);
    Ok(Json(ListBody { data: RegulationList { regulations } }))
}

/// One privacy request with its status overall and per destination (owners and members).
#[utoipa::path(get, path = "/api/v1/regulations/{id}", params(("id" = String, Path, description = "Request id")),
    responses((status = 200, body = OneBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<ControlState>,
    _actor: Actor,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OneBody>, ApiError> {
    let store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    match store.regulation(&id).map_err(ApiError::internal)? {
        Some(regulation) => Ok(Json(OneBody { data: One { regulation } })),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no privacy request has this id", Some("id"))),
    }
}
